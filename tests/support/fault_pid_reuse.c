/*
 * fault_pid_reuse: gives chosen pids to new processes and threads, to replay pid reuse in
 * reaperd's tests (a recorded container or shim pid that now names someone else).
 *
 *   fault_pid_reuse <pid>:process|thread [<pid>:process|thread ...]
 *
 * For each pid in turn, writes pid - 1 to /proc/sys/kernel/ns_last_pid (root, initial pid
 * namespace) and forks a child ("process") or starts a thread of this process ("thread"),
 * retrying when another task took the pid first. All of it happens in this one process, so
 * that no helper started in between can take one of the pids. Prints "ok <pid> ..." once every
 * pid is held (or "fail <reason>" and exits 1), then holds them until it is killed; children
 * are killed with it (PR_SET_PDEATHSIG). Every task ignores every signal it can, so that a
 * stray signal can only show, as SIGKILL, by the task dying.
 *
 * Build: cc -O2 -pthread -o fault_pid_reuse fault_pid_reuse.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int tid_pipe[2];
/* 0 while undecided, 1 to hold the tid for good, -1 to let it go. */
static volatile int keep = 0;

static int set_last_pid(long last) {
  int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char text[32];
  int n = snprintf(text, sizeof text, "%ld", last);
  int ok = write(fd, text, (size_t)n) == n ? 0 : -1;
  close(fd);
  return ok;
}

static void *holder(void *arg) {
  (void)arg;
  pid_t tid = (pid_t)syscall(SYS_gettid);
  if (write(tid_pipe[1], &tid, sizeof tid) != sizeof tid) return NULL;
  for (;;) {
    int k = __atomic_load_n(&keep, __ATOMIC_SEQ_CST);
    if (k < 0) return NULL;
    if (k > 0) pause();
    usleep(1000);
  }
}

static void ignore_signals(void) {
  for (int s = 1; s < 32; s++) {
    if (s == SIGKILL || s == SIGSTOP || s == SIGCHLD) continue;
    signal(s, SIG_IGN);
  }
}

/* Takes one pid; returns 0 when held. */
static int take(long target, int thread) {
  for (int attempt = 0; attempt < 500; attempt++) {
    if (set_last_pid(target - 1) != 0) {
      printf("fail ns_last_pid: %s\n", strerror(errno));
      exit(1);
    }
    if (thread) {
      pthread_t t;
      __atomic_store_n(&keep, 0, __ATOMIC_SEQ_CST);
      if (pthread_create(&t, NULL, holder, NULL) != 0) continue;
      pid_t tid = 0;
      if (read(tid_pipe[0], &tid, sizeof tid) != sizeof tid) continue;
      if (tid == target) {
        __atomic_store_n(&keep, 1, __ATOMIC_SEQ_CST);
        pthread_detach(t);
        return 0;
      }
      __atomic_store_n(&keep, -1, __ATOMIC_SEQ_CST);
      pthread_join(t, NULL);
    } else {
      pid_t parent = getpid();
      pid_t pid = fork();
      if (pid < 0) continue;
      if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(0);
        for (;;) pause();
      }
      if (pid == target) return 0;
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
    }
  }
  return -1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: fault_pid_reuse <pid>:process|thread ...\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IONBF, 0);
  ignore_signals();
  if (pipe(tid_pipe) != 0) {
    printf("fail pipe: %s\n", strerror(errno));
    return 1;
  }
  for (int i = 1; i < argc; i++) {
    char *colon = strchr(argv[i], ':');
    long target = strtol(argv[i], NULL, 10);
    if (colon == NULL || target < 2 || target == getpid()) {
      printf("fail bad argument %s\n", argv[i]);
      return 1;
    }
    int thread = strcmp(colon + 1, "thread") == 0;
    if (!thread && strcmp(colon + 1, "process") != 0) {
      printf("fail bad mode %s\n", colon + 1);
      return 1;
    }
    if (take(target, thread) != 0) {
      printf("fail pid %ld kept being taken\n", target);
      return 1;
    }
  }
  printf("ok");
  for (int i = 1; i < argc; i++) printf(" %ld", strtol(argv[i], NULL, 10));
  printf("\n");
  for (;;) {
    /* Reap nothing on purpose: a child that dies stays a zombie the test can see. */
    pause();
  }
}
