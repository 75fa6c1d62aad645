/*
 * A minimal service manager for tests: it speaks the parts of systemd's protocol that reaperd
 * uses, so that the fd store can be tested where systemd is not PID 1.
 *
 *   fd_store_manager <notify-socket> <store-max> <log-file> -- <command> [args...]
 *
 * It binds a unix datagram socket at <notify-socket> and receives sd_notify(3) messages on it:
 * FDSTORE=1 (with FDNAME= and FDPOLL=0) keeps the fds of the message's SCM_RIGHTS, at most
 * <store-max> of them (the rest are refused, as with FileDescriptorStoreMax=); FDSTOREREMOVE=1
 * closes every kept fd of that FDNAME. A kept fd stored without FDPOLL=0 is dropped as soon as
 * it reports POLLHUP or POLLERR, as systemd does. "start" runs the command with NOTIFY_SOCKET
 * set and, when fds are kept, duplicates of them at 3… with LISTEN_FDS, LISTEN_FDNAMES and
 * LISTEN_PID; its stderr goes to <log-file>.
 *
 * Commands on stdin, one a line; each gets one line on stdout:
 *   start          -> "started <pid>"
 *   kill <signal>  -> "exited <code>" or "signaled <signal>" (messages sent before it died are
 *                     handled first, as systemd does before it processes the death)
 *   stats          -> "stats stored=N received=N removed=N refused=N hup=N duplicates=N
 *                     truncated=N"
 *   pause          -> "paused": the socket is no longer read (a manager too busy to keep up)
 *                     and its receive buffer is made as small as the kernel allows, so that
 *                     senders soon find its queue full
 *   resume         -> "resumed": the socket is read again
 *   quit           -> kills the command with SIGKILL if it runs, then exits
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_FDS_PER_MESSAGE 253

struct kept {
  int fd;
  int poll;
  char name[256];
};

static struct kept *kept;
static size_t n_kept, cap_kept, store_max;
static unsigned long received, removed, refused, hup_dropped, duplicates, truncated;
static int sock = -1;
static int paused = 0;
static pid_t child = 0;
static const char *notify_path, *log_path;
static char **command;

static void die(const char *what) {
  fprintf(stderr, "fd_store_manager: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void drop(size_t i) {
  close(kept[i].fd);
  kept[i] = kept[--n_kept];
}

static void keep(int fd, const char *name, int poll_it) {
  if (n_kept >= store_max) {
    refused++;
    close(fd);
    return;
  }
  for (size_t i = 0; i < n_kept; i++) {
    if (strcmp(kept[i].name, name) == 0) duplicates++;
  }
  if (n_kept == cap_kept) {
    cap_kept = cap_kept ? cap_kept * 2 : 1024;
    kept = realloc(kept, cap_kept * sizeof *kept);
    if (!kept) die("realloc");
  }
  kept[n_kept].fd = fd;
  kept[n_kept].poll = poll_it;
  snprintf(kept[n_kept].name, sizeof kept[n_kept].name, "%s", name);
  n_kept++;
  received++;
}

/* Handles one datagram; returns 0 when the socket is empty. */
static int receive_one(void) {
  char buf[4096];
  union {
    char raw[CMSG_SPACE(sizeof(int) * MAX_FDS_PER_MESSAGE)];
    struct cmsghdr align;
  } control;
  struct iovec iov = {buf, sizeof buf - 1};
  struct msghdr msg = {0};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.raw;
  msg.msg_controllen = sizeof control.raw;
  ssize_t n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return 0;
    die("recvmsg");
  }
  buf[n] = 0;
  /* Fds the kernel could not pass (no room in the control buffer or the fd table) are lost. */
  if (msg.msg_flags & MSG_CTRUNC) truncated++;
  int fds[MAX_FDS_PER_MESSAGE];
  size_t n_fds = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      memcpy(fds + n_fds, CMSG_DATA(c), count * sizeof(int));
      n_fds += count;
    }
  }
  int store = 0, remove_it = 0, poll_it = 1;
  char name[256] = "stored";
  for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
    if (strcmp(line, "FDSTORE=1") == 0) store = 1;
    else if (strcmp(line, "FDSTOREREMOVE=1") == 0) remove_it = 1;
    else if (strcmp(line, "FDPOLL=0") == 0) poll_it = 0;
    else if (strncmp(line, "FDNAME=", 7) == 0) snprintf(name, sizeof name, "%s", line + 7);
  }
  for (size_t i = 0; i < n_fds; i++) {
    if (store) keep(fds[i], name, poll_it);
    else close(fds[i]);
  }
  if (remove_it) {
    for (size_t i = n_kept; i-- > 0;) {
      if (strcmp(kept[i].name, name) == 0) {
        drop(i);
        removed++;
      }
    }
  }
  return 1;
}

static void drain_socket(void) {
  if (paused) return;
  while (receive_one()) {
  }
}

static void start(void) {
  drain_socket();
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    size_t n = n_kept;
    /* Moves every kept fd to 3+i in place, one extra fd at most at a time (the fd table may be
     * nearly full): a later fd sitting on a target is moved above the range first. */
    int maxfd = (int)(3 + n);
    for (size_t i = 0; i < n; i++) {
      if (kept[i].fd > maxfd) maxfd = kept[i].fd;
    }
    size_t slots = (size_t)maxfd + n + 16;
    int *src = malloc(n * sizeof(int) + 1);
    int *owner = malloc(slots * sizeof(int));
    if (!src || !owner) die("malloc");
    for (size_t k = 0; k < slots; k++) owner[k] = -1;
    for (size_t i = 0; i < n; i++) {
      src[i] = kept[i].fd;
      owner[src[i]] = (int)i;
    }
    for (size_t i = 0; i < n; i++) {
      int target = (int)(3 + i);
      if (src[i] == target) {
        if (fcntl(target, F_SETFD, 0) < 0) die("F_SETFD");
        continue;
      }
      int j = owner[target];
      if (j >= 0) {
        int moved = fcntl(target, F_DUPFD_CLOEXEC, (int)(3 + n));
        if (moved < 0 || (size_t)moved >= slots) die("F_DUPFD");
        close(target);
        src[j] = moved;
        owner[moved] = j;
      }
      if (dup2(src[i], target) < 0) die("dup2");
      owner[src[i]] = -1;
      close(src[i]);
      owner[target] = -1;
    }
    size_t names_len = 1;
    for (size_t i = 0; i < n; i++) names_len += strlen(kept[i].name) + 1;
    char *names = calloc(names_len, 1);
    for (size_t i = 0; i < n; i++) {
      if (i > 0) strcat(names, ":");
      strcat(names, kept[i].name);
    }
    char number[32];
    if (n > 0) {
      snprintf(number, sizeof number, "%zu", n);
      setenv("LISTEN_FDS", number, 1);
      snprintf(number, sizeof number, "%d", (int)getpid());
      setenv("LISTEN_PID", number, 1);
      setenv("LISTEN_FDNAMES", names, 1);
    } else {
      unsetenv("LISTEN_FDS");
      unsetenv("LISTEN_PID");
      unsetenv("LISTEN_FDNAMES");
    }
    setenv("NOTIFY_SOCKET", notify_path, 1);
    int null = open("/dev/null", O_RDWR);
    int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (null < 0 || log < 0) die("open");
    dup2(null, 0);
    dup2(null, 1);
    dup2(log, 2);
    if (null > 2 && null >= (int)(3 + n)) close(null);
    if (log > 2 && log >= (int)(3 + n)) close(log);
    signal(SIGPIPE, SIG_DFL);
    execvp(command[0], command);
    die("execvp");
  }
  child = pid;
  printf("started %d\n", (int)pid);
}

static void report_exit(int status) {
  if (WIFSIGNALED(status)) printf("signaled %d\n", WTERMSIG(status));
  else printf("exited %d\n", WEXITSTATUS(status));
}

static void kill_child(int sig) {
  if (child <= 0) {
    printf("exited -1\n");
    return;
  }
  kill(child, sig);
  int status;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  child = 0;
  drain_socket();
  report_exit(status);
}

static void command_line(char *line) {
  if (strcmp(line, "start") == 0) {
    if (child > 0) printf("error already running\n");
    else start();
  } else if (strncmp(line, "kill ", 5) == 0) {
    kill_child(atoi(line + 5));
  } else if (strcmp(line, "stats") == 0) {
    drain_socket();
    printf("stats stored=%zu received=%lu removed=%lu refused=%lu hup=%lu duplicates=%lu "
           "truncated=%lu\n",
           n_kept, received, removed, refused, hup_dropped, duplicates, truncated);
  } else if (strcmp(line, "pause") == 0) {
    int small = 1;
    setsockopt(sock, SOL_SOCKET, SO_RCVBUFFORCE, &small, sizeof small);
    paused = 1;
    printf("paused\n");
  } else if (strcmp(line, "resume") == 0) {
    int big = 8 << 20;
    setsockopt(sock, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    paused = 0;
    drain_socket();
    printf("resumed\n");
  } else if (strcmp(line, "quit") == 0) {
    if (child > 0) kill_child(SIGKILL);
    exit(0);
  } else {
    printf("error unknown command\n");
  }
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc < 6 || strcmp(argv[4], "--") != 0) {
    fprintf(stderr, "usage: %s <notify-socket> <store-max> <log-file> -- <command>...\n", argv[0]);
    return 2;
  }
  notify_path = argv[1];
  store_max = strtoul(argv[2], NULL, 10);
  log_path = argv[3];
  command = argv + 5;
  signal(SIGPIPE, SIG_IGN);
  /* Kept fds and their copies for the child: as root take what systemd would have. */
  struct rlimit rl = {1 << 20, 1 << 20};
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) die("socket");
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", notify_path);
  unlink(notify_path);
  if (bind(sock, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
  int big = 8 << 20;
  setsockopt(sock, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
  printf("ready\n");
  fflush(stdout);

  char line[256];
  size_t used = 0;
  struct pollfd *pfds = NULL;
  size_t cap_pfds = 0;
  for (;;) {
    size_t polled = 0;
    for (size_t i = 0; i < n_kept; i++) polled += kept[i].poll;
    if (cap_pfds < polled + 2) {
      cap_pfds = polled + 1024;
      pfds = realloc(pfds, cap_pfds * sizeof *pfds);
    }
    pfds[0] = (struct pollfd){.fd = 0, .events = POLLIN};
    pfds[1] = (struct pollfd){.fd = sock, .events = paused ? 0 : POLLIN};
    size_t k = 2;
    for (size_t i = 0; i < n_kept; i++) {
      if (kept[i].poll) pfds[k++] = (struct pollfd){.fd = kept[i].fd, .events = 0};
    }
    if (poll(pfds, k, 100) < 0 && errno != EINTR) die("poll");
    if (pfds[1].revents & POLLIN) drain_socket();
    /* A kept fd that hangs up is dropped unless it was stored with FDPOLL=0. */
    if (k > 2) {
      for (size_t j = 2; j < k; j++) {
        if (!(pfds[j].revents & (POLLHUP | POLLERR))) continue;
        for (size_t i = 0; i < n_kept; i++) {
          if (kept[i].fd == pfds[j].fd) {
            drop(i);
            hup_dropped++;
            break;
          }
        }
      }
    }
    if (child > 0) {
      int status;
      if (waitpid(child, &status, WNOHANG) == child) child = 0;
    }
    if (pfds[0].revents & (POLLIN | POLLHUP)) {
      ssize_t n = read(0, line + used, sizeof line - 1 - used);
      if (n <= 0) {
        if (child > 0) kill(child, SIGKILL);
        return 0;
      }
      used += (size_t)n;
      char *nl;
      while ((nl = memchr(line, '\n', used)) != NULL) {
        *nl = 0;
        command_line(line);
        size_t rest = used - (size_t)(nl + 1 - line);
        memmove(line, nl + 1, rest);
        used = rest;
      }
      if (used == sizeof line - 1) used = 0;
    }
  }
}
