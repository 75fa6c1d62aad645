/*
 * The floor under reaperd's exit path and its cleanups, with nothing but the system calls they
 * need. Built with gcc by the benchmark (bench/floor.ts) in the same run it measures.
 *
 *   floor exit <dir> <count>
 *     Makes <count> FIFOs <dir>/fifo-<i>, holds each read end on one epoll set and prints
 *     "ready". Then, for each FIFO whose 4-byte status arrives: reads it, appends a record to
 *     <dir>/records and fsyncs it (the durable record), and only then prints
 *     "exit <i> <status>" on stdout (the event a client sees). Ends after <count> exits.
 *
 *   floor spawn <count> <in flight>
 *     Runs /bin/true <count> times with posix_spawn + waitpid, at most <in flight> at once, and
 *     prints "spawn <per second>".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void die(const char *what) {
  fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("write");
    }
    buf += n;
    len -= (size_t)n;
  }
}

static int exit_floor(const char *dir, int count) {
  char path[4096];
  int *fds = calloc((size_t)count, sizeof(int));
  if (fds == NULL) die("calloc");
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  snprintf(path, sizeof path, "%s/records", dir);
  int records = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (records < 0) die("open records");
  for (int i = 0; i < count; i++) {
    snprintf(path, sizeof path, "%s/fifo-%d", dir, i);
    if (mkfifo(path, 0600) < 0) die("mkfifo");
    fds[i] = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fds[i] < 0) die("open fifo");
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0) die("epoll_ctl");
  }
  write_all(1, "ready\n", 6);
  int left = count;
  struct epoll_event events[64];
  while (left > 0) {
    int n = epoll_wait(ep, events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int k = 0; k < n; k++) {
      int i = (int)events[k].data.u32;
      unsigned char status[4];
      ssize_t got = read(fds[i], status, sizeof status);
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      int code = -1;
      if (got == 4) memcpy(&code, status, sizeof code);
      char line[128];
      int len = snprintf(line, sizeof line, "exit %d %d\n", i, code);
      write_all(records, line, (size_t)len);
      if (fsync(records) < 0) die("fsync");
      write_all(1, line, (size_t)len);
      epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
      close(fds[i]);
      left--;
    }
  }
  return 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int spawn_floor(int count, int in_flight) {
  char *argv[] = {"/bin/true", NULL};
  double start = now_s();
  int started = 0, running = 0;
  while (started < count || running > 0) {
    while (running < in_flight && started < count) {
      pid_t pid;
      int err = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
      if (err != 0) {
        errno = err;
        die("posix_spawn");
      }
      started++;
      running++;
    }
    int status;
    if (waitpid(-1, &status, 0) < 0) {
      if (errno == EINTR) continue;
      die("waitpid");
    }
    running--;
  }
  printf("spawn %.1f\n", count / (now_s() - start));
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "exit") == 0) return exit_floor(argv[2], atoi(argv[3]));
  if (argc == 4 && strcmp(argv[1], "spawn") == 0) {
    return spawn_floor(atoi(argv[2]), atoi(argv[3]));
  }
  fprintf(stderr, "usage: floor exit <dir> <count> | floor spawn <count> <in flight>\n");
  return 2;
}
