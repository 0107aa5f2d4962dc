/* Client modes on one epoll loop (included by loadgen.c): cycles, churn, hold; UDP and HTTP. */

enum cstate { FREE, CONNECTING, HANDSHAKE, XFER, HELD };

struct conn {
  int fd, step;
  int mismatched; /* some echoed byte differed from what was sent */
  enum cstate state;
  unsigned char hs[512];
  size_t hs_got;
  unsigned char *out;
  size_t out_len, out_off, in_got;
};

static int ep;
static struct conn *conns; /* indexed by fd */
static long long done_count, errors, mismatches, active, held;
static int churn_mode, held_phase, max_fd;
static volatile sig_atomic_t released;

static void on_release(int sig) {
  (void)sig;
  released = 1;
}
static unsigned rng = 2463534242u;
static unsigned char payload64[64];

static unsigned xorshift(void) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return rng;
}

static void interest(struct conn *c, int out) {
  struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.fd = c->fd};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* ok: 1 a complete, byte-identical echo; 0 a failure; -1 a complete echo that differed
 * (counted in mismatches only, never as done). */
static void finish(struct conn *c, int ok) {
  if (ok > 0) done_count++;
  else if (ok < 0) mismatches++;
  else errors++;
  if (c->out != payload64) free(c->out);
  c->out = NULL;
  close(c->fd);
  c->state = FREE;
  active--;
}

static void start_conn(void) {
  int s = tcp_socket(1);
  struct conn *c = &conns[s];
  if (s > max_fd) max_fd = s;
  memset(c, 0, sizeof *c);
  c->fd = s;
  c->state = CONNECTING;
  active++;
  struct sockaddr_in a = loopback(mode == NONE ? dest_port : proxy_port);
  struct epoll_event ev = {.events = EPOLLOUT, .data.fd = s};
  epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
  if (connect(s, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) finish(c, 0);
}

/* Writes what is pending; 0 on a dead socket. */
static int flush_out(struct conn *c) {
  while (c->out_off < c->out_len) {
    ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
    if (w < 0) return errno == EAGAIN;
    c->out_off += w;
  }
  return 1;
}

/* The payload: 64 fixed bytes for cycles and hold, 1..64 KiB of noise when churning. */
static void begin_xfer(struct conn *c) {
  if (churn_mode) {
    c->out_len = 1 + xorshift() % 65536;
    c->out = malloc(c->out_len);
    for (size_t i = 0; i < c->out_len; i++) c->out[i] = (unsigned char)xorshift();
  } else {
    c->out = payload64;
    c->out_len = sizeof payload64;
  }
  c->out_off = c->in_got = 0;
  c->mismatched = 0;
  c->state = XFER;
  if (!flush_out(c)) return finish(c, 0);
  interest(c, c->out_off < c->out_len);
}

static void send_hello(struct conn *c) {
  unsigned char buf[512];
  size_t len = hello(buf, c->step);
  c->hs_got = 0;
  if (write(c->fd, buf, len) != (ssize_t)len) return finish(c, 0);
  c->state = HANDSHAKE;
  interest(c, 0);
}

static void on_event(struct conn *c, uint32_t events) {
  if (c->state == HELD) { /* closed by the relay while held: counted as an error */
    held--;
    return finish(c, 0);
  }
  if (c->state == CONNECTING) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) return finish(c, 0);
    if (steps() > 0) return send_hello(c);
    return begin_xfer(c);
  }
  if (c->state == HANDSHAKE) {
    ssize_t r = read(c->fd, c->hs + c->hs_got, sizeof c->hs - c->hs_got);
    if (r <= 0) return r < 0 && errno == EAGAIN ? (void)0 : finish(c, 0);
    c->hs_got += r;
    long need = answer_len(c->hs, c->hs_got, c->step);
    if (need < 0) return finish(c, 0);
    if (need == 0) return;
    if (++c->step < steps()) return send_hello(c);
    return begin_xfer(c);
  }
  if (events & EPOLLOUT) {
    if (!flush_out(c)) return finish(c, 0);
    if (c->out_off == c->out_len) interest(c, 0);
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  unsigned char buf[65536];
  ssize_t r = read(c->fd, buf, sizeof buf);
  if (r < 0 && errno == EAGAIN) return;
  if (r <= 0 || c->state != XFER || c->in_got + r > c->out_len) return finish(c, 0);
  if (memcmp(buf, c->out + c->in_got, r)) c->mismatched = 1;
  c->in_got += r;
  if (c->in_got < c->out_len) return;
  if (c->mismatched) return finish(c, -1);
  if (held_phase) {
    c->state = HELD;
    held++;
    return;
  }
  finish(c, 1);
}

static void loop_once(int timeout_ms) {
  struct epoll_event evs[256];
  int n = epoll_wait(ep, evs, 256, timeout_ms);
  for (int i = 0; i < n; i++) {
    on_event(&conns[evs[i].data.fd], evs[i].events);
  }
}

static void setup_loop(void) {
  struct rlimit r;
  getrlimit(RLIMIT_NOFILE, &r);
  conns = calloc(r.rlim_cur, sizeof *conns);
  ep = epoll_create1(0);
  memset(payload64, 'x', sizeof payload64);
}

static int cycles(int conc, double seconds, int churn) {
  churn_mode = churn;
  setup_loop();
  double t0 = now(), end = t0 + seconds;
  while (now() < end) {
    while (active < conc) start_conn();
    loop_once(10);
  }
  double elapsed = now() - t0;
  /* per_s counts what completed within the window; the drain only settles the rest. */
  long long in_window = done_count;
  for (double drain = now() + 10; active > 0 && now() < drain;) loop_once(10);
  printf("{\"cycles\":%lld,\"per_s\":%.1f,\"errors\":%lld,\"mismatches\":%lld,\"unfinished\":%lld}\n", done_count,
         in_window / elapsed, errors, mismatches, active);
  return 0;
}

/* Opens n relayed connections (at most 256 opening at once), each echoes 64 bytes, then all
 * stay open. Prints {"held":n}; on SIGUSR1 every one echoes again and closes. */
static int hold(int n) {
  signal(SIGUSR1, on_release);
  setup_loop();
  held_phase = 1;
  alarm(120);
  long long opened = 0;
  while (held + errors + mismatches < n) {
    while (opened < n && active - held < 256) {
      start_conn();
      opened++;
    }
    loop_once(10);
  }
  alarm(0);
  printf("{\"held\":%lld,\"errors\":%lld,\"mismatches\":%lld}\n", held, errors, mismatches);
  while (!released) loop_once(1000);
  alarm(120);
  held_phase = 0;
  done_count = 0;
  for (int fd = 0; fd <= max_fd; fd++)
    if (conns[fd].state == HELD) {
      held--;
      begin_xfer(&conns[fd]);
    }
  while (active > 0) loop_once(100);
  printf("{\"verified\":%lld,\"errors\":%lld,\"mismatches\":%lld}\n", done_count, errors, mismatches);
  return 0;
}

/* UDP ASSOCIATE (or straight to the echo server when proxy_port is 0): 512-byte round trips. */
static int udp_rt(int pport, int dport, int inflight, double seconds) {
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in me = loopback(0), relay = loopback(dport);
  if (bind(u, (struct sockaddr *)&me, sizeof me) < 0) die("udp bind");
  socklen_t ml = sizeof me;
  getsockname(u, (struct sockaddr *)&me, &ml);
  unsigned char frame[522], buf[2048];
  size_t head = 0;
  int control = -1;
  if (pport) {
    mode = NONE;
    dest_port = pport;
    control = open_blocking();
    unsigned char req[13] = {5, 1, 0, 5, 3, 0, 1, 127, 0, 0, 1};
    memcpy(req + 11, &me.sin_port, 2);
    if (write(control, req, 3) != 3 || read(control, buf, 2) != 2 || buf[1] != 0) die("udp greeting");
    if (write(control, req + 3, 10) != 10) die("udp request");
    size_t got = 0;
    while (got < 10) {
      ssize_t r = read(control, buf + got, 10 - got);
      if (r <= 0) die("udp reply");
      got += r;
    }
    if (buf[1] != 0 || buf[3] != 1) {
      fprintf(stderr, "loadgen: ASSOCIATE refused (%d)\n", buf[1]);
      return 4;
    }
    memcpy(&relay.sin_port, buf + 8, 2);
    if (memcmp(buf + 4, "\0\0\0\0", 4)) memcpy(&relay.sin_addr, buf + 4, 4);
    unsigned char h[10] = {0, 0, 0, 1, 127, 0, 0, 1, (unsigned char)(dport >> 8), (unsigned char)dport};
    memcpy(frame, h, 10);
    head = 10;
  }
  memset(frame + head, 'u', 512);
  size_t flen = head + 512;
  struct timeval tv = {.tv_usec = 20000};
  setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  long long answered = 0, lost = 0;
  double t0 = now(), end = t0 + seconds;
  for (int i = 0; i < inflight; i++) sendto(u, frame, flen, 0, (struct sockaddr *)&relay, sizeof relay);
  while (now() < end) {
    ssize_t r = recv(u, buf, sizeof buf, 0);
    if (r < 0) { /* a silent window: refill it */
      lost += inflight;
      for (int i = 0; i < inflight; i++) sendto(u, frame, flen, 0, (struct sockaddr *)&relay, sizeof relay);
      continue;
    }
    /* A round trip counts when the payload came back intact, not merely its length. */
    if ((size_t)r == flen && !memcmp(buf + head, frame + head, 512)) answered++;
    sendto(u, frame, flen, 0, (struct sockaddr *)&relay, sizeof relay);
  }
  printf("{\"per_s\":%.1f,\"refills\":%lld}\n", answered / (now() - t0), lost / (inflight ? inflight : 1));
  if (control >= 0) close(control);
  return 0;
}

/* Absolute-form GETs through an HTTP proxy, one at a time on one keep-alive connection. */
static int absolute(int pport, int dport, double seconds) {
  mode = NONE;
  dest_port = pport;
  int s = open_blocking();
  char req[256], buf[4096];
  int len = sprintf(req, "GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", dport, dport);
  long long n = 0;
  double t0 = now(), end = t0 + seconds;
  while (now() < end) {
    if (write(s, req, len) != len) die("request write");
    size_t got = 0;
    long need = -1;
    while (need < 0 || got < (size_t)need) {
      ssize_t r = read(s, buf + got, sizeof buf - got - 1);
      if (r <= 0) {
        fprintf(stderr, "loadgen: the proxy closed the keep-alive connection after %lld requests\n", n);
        return 4;
      }
      got += r;
      buf[got] = 0;
      char *eoh = strstr(buf, "\r\n\r\n"), *cl = strcasestr(buf, "content-length:");
      if (eoh && cl) need = (eoh - buf) + 4 + atol(cl + 15);
    }
    if (strncmp(buf + 9, "200", 3)) {
      fprintf(stderr, "loadgen: status %.3s\n", buf + 9);
      return 4;
    }
    n++;
  }
  printf("{\"per_s\":%.1f}\n", n / (now() - t0));
  close(s);
  return 0;
}
