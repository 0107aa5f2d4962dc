/* The target servers (included by loadgen.c), one epoll loop on 127.0.0.1:
 * sink (reads an 8-byte count, host order, then that many bytes, and answers with the count
 * it read: no FIN needed, which relays without half-close do not pass on), source (sends as
 * many bytes as the 8-byte count, host order, it is sent, then closes), echo, echo_close (echoes 64 bytes, then closes
 * first: the cycles target), HTTP (200 "ok" to every request, keep-alive) and UDP echo.
 * It ends with its parent.
 *
 * Why echo_close: a TCP connection's TIME_WAIT stays with the side that closes first. When
 * the client closes first, that side is the relay's outbound socket, and a relay that binds
 * it before connecting (Dante binds to its `external:` address) finds its ports held by
 * tens of thousands of TIME_WAITs after a few seconds of cycles and fails its connects;
 * connect() alone may reuse them on loopback (tcp_tw_reuse). With the target closing
 * first, TIME_WAIT lands on the target's and the relay's listening ports, as it would for
 * a crawler's server that ends its responses. */

/* Bytes echo_close sends back before it closes: the cycles payload. */
#define ECHO_CLOSE_BYTES 64

enum kind { K_NONE, L_SINK, L_SOURCE, L_ECHO, L_ECHO_CLOSE, L_HTTP, U_ECHO, SINK, SOURCE, ECHO, ECHO_CLOSE, HTTPC };

struct peer {
  enum kind kind;
  unsigned char *pending; /* echo bytes the socket did not take yet */
  size_t pending_len, pending_off;
  uint64_t left; /* source: bytes still to send; echo_close: bytes still to echo; sink: bytes read */
  unsigned char head[8];
  size_t head_got;
  int answered; /* sink: the count went back */
};

static struct peer *peers;
static unsigned char block[256 * 1024];
static int sep;

static void watch_fd(int fd, enum kind k, uint32_t events, int op) {
  peers[fd].kind = k;
  struct epoll_event ev = {.events = events, .data.fd = fd};
  epoll_ctl(sep, op, fd, &ev);
}

static int listener(int type) {
  int s = socket(AF_INET, type | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = loopback(0);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
  if (type == SOCK_STREAM && listen(s, 4096) < 0) die("listen");
  return s;
}

static int port_of(int s) {
  struct sockaddr_in a;
  socklen_t l = sizeof a;
  getsockname(s, (struct sockaddr *)&a, &l);
  return ntohs(a.sin_port);
}

static void drop(int fd) {
  free(peers[fd].pending);
  memset(&peers[fd], 0, sizeof peers[fd]);
  close(fd);
}

/* echo_close: FIN once the last byte went back (not while some still wait to be written). */
static void fin_if_echoed(int fd) {
  struct peer *p = &peers[fd];
  if (p->kind == ECHO_CLOSE && p->left == 0 && !p->pending) shutdown(fd, SHUT_WR);
}

/* Writes `data` and what is left of it later; reading pauses while bytes are pending. */
static void send_back(int fd, const unsigned char *data, size_t len) {
  ssize_t w = write(fd, data, len);
  if (w < 0 && errno != EAGAIN) return drop(fd);
  if (w < 0) w = 0;
  if ((size_t)w == len) return;
  struct peer *p = &peers[fd];
  p->pending = malloc(len - w);
  memcpy(p->pending, data + w, len - w);
  p->pending_len = len - w;
  p->pending_off = 0;
  watch_fd(fd, p->kind, EPOLLOUT, EPOLL_CTL_MOD);
}

static void pump_source(int fd) {
  struct peer *p = &peers[fd];
  while (p->left > 0) {
    ssize_t w = write(fd, block, p->left < sizeof block ? p->left : sizeof block);
    if (w < 0) {
      if (errno != EAGAIN) return drop(fd);
      return watch_fd(fd, SOURCE, EPOLLOUT, EPOLL_CTL_MOD);
    }
    p->left -= w;
  }
  drop(fd);
}

static void on_peer(int fd, uint32_t events) {
  struct peer *p = &peers[fd];
  if (p->kind == SOURCE && p->head_got == 8) return pump_source(fd);
  if (p->pending) {
    if (!(events & EPOLLOUT)) return;
    ssize_t w = write(fd, p->pending + p->pending_off, p->pending_len - p->pending_off);
    if (w < 0) return errno == EAGAIN ? (void)0 : drop(fd);
    p->pending_off += w;
    if (p->pending_off < p->pending_len) return;
    free(p->pending);
    p->pending = NULL;
    fin_if_echoed(fd);
    return watch_fd(fd, p->kind, EPOLLIN, EPOLL_CTL_MOD);
  }
  ssize_t r = read(fd, block, sizeof block);
  if (r < 0) return errno == EAGAIN ? (void)0 : drop(fd);
  if (r == 0) return drop(fd);
  if (p->kind == SINK) {
    ssize_t i = 0;
    while (i < r && p->head_got < 8) p->head[p->head_got++] = block[i++];
    p->left += r - i;
    uint64_t want;
    memcpy(&want, p->head, 8);
    if (p->head_got == 8 && p->left >= want && !p->answered) {
      p->answered = 1;
      (void)!write(fd, &p->left, 8);
    }
    return;
  }
  if (p->kind == ECHO) return send_back(fd, block, r);
  if (p->kind == ECHO_CLOSE) {
    p->left = (uint64_t)r < p->left ? p->left - r : 0;
    send_back(fd, block, r);
    return fin_if_echoed(fd); /* a drop() in send_back left kind K_NONE: nothing to do */
  }
  if (p->kind == HTTPC) {
    /* Requests carry no body here: one answer per blank line that ends a head. */
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok";
    for (ssize_t i = 3; i < r; i++)
      if (!memcmp(block + i - 3, "\r\n\r\n", 4)) send_back(fd, (const unsigned char *)ok, sizeof ok - 1);
    return;
  }
  if (p->kind == SOURCE) {
    for (ssize_t i = 0; i < r && p->head_got < 8; i++) p->head[p->head_got++] = block[i];
    if (p->head_got == 8) {
      memcpy(&p->left, p->head, 8);
      pump_source(fd);
    }
  }
}

static void on_udp(int fd) {
  unsigned char buf[65536];
  struct sockaddr_in from;
  for (;;) {
    socklen_t l = sizeof from;
    ssize_t r = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &l);
    if (r < 0) return;
    sendto(fd, buf, r, 0, (struct sockaddr *)&from, l);
  }
}

static int serve(void) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  peers = calloc(rl.rlim_cur, sizeof *peers);
  sep = epoll_create1(0);
  int sink = listener(SOCK_STREAM), source = listener(SOCK_STREAM), echo = listener(SOCK_STREAM), echo_close = listener(SOCK_STREAM),
      http = listener(SOCK_STREAM), udp = listener(SOCK_DGRAM);
  watch_fd(sink, L_SINK, EPOLLIN, EPOLL_CTL_ADD);
  watch_fd(source, L_SOURCE, EPOLLIN, EPOLL_CTL_ADD);
  watch_fd(echo, L_ECHO, EPOLLIN, EPOLL_CTL_ADD);
  watch_fd(echo_close, L_ECHO_CLOSE, EPOLLIN, EPOLL_CTL_ADD);
  watch_fd(http, L_HTTP, EPOLLIN, EPOLL_CTL_ADD);
  watch_fd(udp, U_ECHO, EPOLLIN, EPOLL_CTL_ADD);
  int sz = 4 << 20;
  setsockopt(udp, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  printf("{\"sink\":%d,\"source\":%d,\"echo\":%d,\"echo_close\":%d,\"http\":%d,\"udp\":%d}\n", port_of(sink), port_of(source),
         port_of(echo), port_of(echo_close), port_of(http), port_of(udp));
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(sep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      enum kind k = peers[fd].kind;
      if (k == U_ECHO) {
        on_udp(fd);
      } else if (k >= L_SINK && k <= L_HTTP) {
        int c;
        while ((c = accept4(fd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          int one = 1;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          enum kind ck = k == L_SINK ? SINK : k == L_SOURCE ? SOURCE : k == L_ECHO ? ECHO : k == L_ECHO_CLOSE ? ECHO_CLOSE : HTTPC;
          watch_fd(c, ck, EPOLLIN, EPOLL_CTL_ADD);
          if (ck == ECHO_CLOSE) peers[c].left = ECHO_CLOSE_BYTES;
        }
      } else if (k != K_NONE) {
        on_peer(fd, evs[i].events);
      }
    }
  }
  return 0;
}
