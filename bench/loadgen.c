/*
 * Load generator and target servers for `npm run bench` (bench/perf.ts compiles this
 * with the system cc at run time). Written in C so that the client side is never the
 * bottleneck: the relay under test is pinned to one core, this to the other.
 *
 *   loadgen serve                      sink, source, echo, echo_close, HTTP and UDP echo
 *                                      servers on 127.0.0.1; prints their ports as one JSON line
 *   loadgen up|down PROXY PP DP BYTES STREAMS          MB/s (1 MB = 10^6 bytes)
 *   loadgen cycles PROXY PP DP CONC SECONDS            connect + handshake + 64-byte echo + close
 *                                                      (the bench's DP: echo_close, which closes first)
 *   loadgen hold PROXY PP DP N                         N relayed connections held open (each
 *                                                      echoed 64 bytes) until SIGUSR1, then
 *                                                      each echoes again and closes
 *   loadgen churn PROXY PP DP CONC SECONDS             cycles with 1..64 KiB random payloads,
 *                                                      each echo compared byte for byte
 *   loadgen udp PP DP INFLIGHT SECONDS                 512-byte round trips/s (PP 0: direct)
 *   loadgen absolute PP DP SECONDS                     absolute-form GETs/s, one keep-alive conn
 *
 * PROXY: none | socks5 (greeting and request in one write) | socks5-lockstep (request after
 * the method reply, for relays that drop pipelined bytes) | http (HTTP CONNECT).
 * Every mode is bounded: alarm() ends a run that overstays its time.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum proxy { NONE, SOCKS5, LOCKSTEP, HTTP };
static enum proxy mode;
static int proxy_port, dest_port;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "loadgen: deadline passed\n";
  (void)!write(2, msg, sizeof msg - 1);
  _exit(3);
}

static void raise_nofile(void) {
  struct rlimit r;
  if (getrlimit(RLIMIT_NOFILE, &r) == 0) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

static int tcp_socket(int nonblock) {
  int s = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
  if (s < 0) die("socket");
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return s;
}

/* ---- proxy handshakes, as byte strings and reply parsers ---- */

/* What the client writes first, and (LOCKSTEP) after the method reply. */
static size_t hello(unsigned char *out, int second) {
  unsigned char req[10] = {5, 1, 0, 1, 127, 0, 0, 1, (unsigned char)(dest_port >> 8), (unsigned char)dest_port};
  switch (mode) {
  case SOCKS5:
    memcpy(out, "\5\1\0", 3);
    memcpy(out + 3, req, 10);
    return 13;
  case LOCKSTEP:
    if (second) {
      memcpy(out, req, 10);
      return 10;
    }
    memcpy(out, "\5\1\0", 3);
    return 3;
  case HTTP:
    return sprintf((char *)out, "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", dest_port, dest_port);
  default:
    return 0;
  }
}

/* Bytes of a complete answer in buf, 0 when more are needed, -1 when refused. */
static long answer_len(const unsigned char *b, size_t n, int second) {
  if (mode == HTTP) {
    for (size_t i = 3; i < n; i++)
      if (!memcmp(b + i - 3, "\r\n\r\n", 4)) return (n >= 12 && !memcmp(b + 9, "200", 3)) ? (long)(i + 1) : -1;
    return 0;
  }
  size_t at = 0;
  if (mode == LOCKSTEP && !second) return n >= 2 ? (b[1] == 0 ? 2 : -1) : 0;
  if (mode == SOCKS5) {
    if (n < 2) return 0;
    if (b[1] != 0) return -1;
    at = 2;
  }
  if (n < at + 5) return 0;
  if (b[at + 1] != 0) return -1;
  size_t len = b[at + 3] == 1 ? 10 : b[at + 3] == 4 ? 22 : 7 + b[at + 4];
  return n >= at + len ? (long)(at + len) : 0;
}

static int steps(void) { return mode == NONE ? 0 : mode == LOCKSTEP ? 2 : 1; }

/* Blocking: connect through the proxy to the destination; the socket, ready to relay. */
static int open_blocking(void) {
  int s = tcp_socket(0);
  struct sockaddr_in a = loopback(mode == NONE ? dest_port : proxy_port);
  if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
  for (int step = 0; step < steps(); step++) {
    unsigned char buf[512];
    size_t len = hello(buf, step), got = 0;
    if (write(s, buf, len) != (ssize_t)len) die("handshake write");
    long need;
    while ((need = answer_len(buf, got, step)) == 0) {
      ssize_t r = read(s, buf + got, sizeof buf - got);
      if (r <= 0) die("handshake read");
      got += r;
    }
    if (need < 0) {
      fprintf(stderr, "loadgen: proxy refused\n");
      exit(4);
    }
  }
  return s;
}

/* ---- throughput: one thread per stream, blocking sockets ---- */

static long long stream_bytes;
static int direction_up;

static void *stream(void *arg) {
  int s = *(int *)arg;
  static char block[256 * 1024];
  if (direction_up) {
    /* The count first, then exactly that many bytes; the run ends when the sink says it read
     * them all. Not at a close after our FIN: a relay without half-close (the bare relay,
     * microsocks) closes as soon as it reads the FIN, with bytes still in its buffers, and a
     * relay that drops bytes must not pass for a fast one. */
    uint64_t want = stream_bytes;
    if (write(s, &want, 8) != 8) die("write");
    for (long long sent = 0; sent < stream_bytes;) {
      long long left = stream_bytes - sent;
      ssize_t w = write(s, block, left < (long long)sizeof block ? (size_t)left : sizeof block);
      if (w <= 0) die("write");
      sent += w;
    }
    uint64_t arrived = 0;
    size_t got = 0;
    ssize_t r;
    while (got < 8 && (r = read(s, (char *)&arrived + got, 8 - got)) > 0) got += r;
    if (got < 8 || arrived != (uint64_t)stream_bytes) {
      fprintf(stderr, "loadgen: the sink got %llu of %lld bytes\n", got < 8 ? 0ULL : (unsigned long long)arrived, stream_bytes);
      exit(5);
    }
  } else {
    uint64_t want = stream_bytes;
    if (write(s, &want, 8) != 8) die("write");
    long long got = 0;
    ssize_t r;
    char *buf = malloc(256 * 1024);
    while ((r = read(s, buf, 256 * 1024)) > 0) got += r;
    free(buf);
    if (got != stream_bytes) {
      fprintf(stderr, "loadgen: short stream %lld of %lld\n", got, stream_bytes);
      exit(5);
    }
  }
  close(s);
  return NULL;
}

static int throughput(long long bytes, int streams) {
  stream_bytes = bytes / streams;
  int fds[64];
  pthread_t th[64];
  for (int i = 0; i < streams; i++) fds[i] = open_blocking();
  double t0 = now();
  for (int i = 0; i < streams; i++) pthread_create(&th[i], NULL, stream, &fds[i]);
  for (int i = 0; i < streams; i++) pthread_join(th[i], NULL);
  printf("{\"MBps\":%.1f}\n", stream_bytes * streams / 1e6 / (now() - t0));
  return 0;
}

#include "loadgen-conns.h"
#include "loadgen-serve.h"

int main(int argc, char **argv) {
  /* Every mode ends with the bench, even one killed outright: hold waits for SIGUSR1 unbounded. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGALRM, on_alarm);
  raise_nofile();
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 2 && !strcmp(argv[1], "serve")) return serve();
  if (argc >= 5 && !strcmp(argv[1], "udp")) {
    alarm(atoi(argv[5]) + 30);
    return udp_rt(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atof(argv[5]));
  }
  if (argc >= 5 && !strcmp(argv[1], "absolute")) {
    alarm(atoi(argv[4]) + 30);
    return absolute(atoi(argv[2]), atoi(argv[3]), atof(argv[4]));
  }
  if (argc < 6) {
    fprintf(stderr, "usage: see the comment at the top of loadgen.c\n");
    return 2;
  }
  const char *m = argv[2];
  mode = !strcmp(m, "socks5") ? SOCKS5 : !strcmp(m, "socks5-lockstep") ? LOCKSTEP : !strcmp(m, "http") ? HTTP : NONE;
  proxy_port = atoi(argv[3]);
  dest_port = atoi(argv[4]);
  if (!strcmp(argv[1], "up") || !strcmp(argv[1], "down")) {
    alarm(300);
    direction_up = !strcmp(argv[1], "up");
    return throughput(atoll(argv[5]), argc > 6 ? atoi(argv[6]) : 1);
  }
  if (!strcmp(argv[1], "cycles") && argc > 6) {
    alarm(atoi(argv[6]) + 30);
    return cycles(atoi(argv[5]), atof(argv[6]), 0);
  }
  if (!strcmp(argv[1], "churn") && argc > 6) {
    alarm(atoi(argv[6]) + 60);
    return cycles(atoi(argv[5]), atof(argv[6]), 1);
  }
  if (!strcmp(argv[1], "hold")) return hold(atoi(argv[5]));
  fprintf(stderr, "loadgen: unknown mode %s\n", argv[1]);
  return 2;
}
