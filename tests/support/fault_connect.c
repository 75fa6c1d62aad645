/*
 * fault_connect: tries to talk to reaperd's socket, for the permission tests (run it as another
 * user with setpriv).
 *
 *   fault_connect <socket>
 *
 * Connects, sends GET /v1/health and prints the status line of the answer, exiting 0; or prints
 * "connect: <reason>" and exits 1 when the socket cannot be reached.
 *
 * Build: cc -O2 -o fault_connect fault_connect.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 2 || strlen(argv[1]) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
    fprintf(stderr, "usage: fault_connect <socket>\n");
    return 2;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    printf("socket: %s\n", strerror(errno));
    return 1;
  }
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  strcpy(addr.sun_path, argv[1]);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    printf("connect: %s\n", strerror(errno));
    return 1;
  }
  const char *req = "GET /v1/health HTTP/1.1\r\nHost: reaperd\r\nConnection: close\r\n\r\n";
  if (write(fd, req, strlen(req)) < 0) {
    printf("write: %s\n", strerror(errno));
    return 1;
  }
  char buf[256];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  if (n <= 0) {
    printf("read: %s\n", n < 0 ? strerror(errno) : "no answer");
    return 1;
  }
  buf[n] = '\0';
  char *eol = strstr(buf, "\r\n");
  if (eol != NULL) *eol = '\0';
  printf("%s\n", buf);
  return 0;
}
