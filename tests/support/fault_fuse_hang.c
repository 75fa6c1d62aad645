/*
 * fault_fuse_hang: a FUSE filesystem that never answers a lookup, to put a process into
 * uninterruptible sleep (D state) for reaperd's fault tests.
 *
 *   fault_fuse_hang <mountpoint>
 *
 * Mounts itself at <mountpoint> through /dev/fuse (as root, no libfuse or fusermount needed)
 * and prints "ready" on stdout. It answers INIT and the root's GETATTR; every LOOKUP is read
 * and then left unanswered, and "held <pid>" is printed (the pid of the caller). A caller
 * stuck like that sleeps interruptibly until it gets SIGKILL; from then on the kernel waits
 * for the answer without interruption, since the request already reached this server: the
 * caller sits in D state and cannot die. Killing this server aborts the connection, ends every
 * pending request, and lets the caller die. The mount is left for the test to unmount.
 *
 * Build: cc -O2 -o fault_fuse_hang fault_fuse_hang.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static int fuse_fd;

static void reply(uint64_t unique, int error, const void *body, size_t size) {
  char buf[sizeof(struct fuse_out_header) + 256];
  struct fuse_out_header out = {
      .len = (uint32_t)(sizeof out + size), .error = error, .unique = unique};
  memcpy(buf, &out, sizeof out);
  if (size > 0) memcpy(buf + sizeof out, body, size);
  if (write(fuse_fd, buf, sizeof out + size) < 0 && errno != ENOENT) {
    perror("fault_fuse_hang: write /dev/fuse");
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: fault_fuse_hang <mountpoint>\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IONBF, 0);
  fuse_fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fuse_fd < 0) {
    perror("fault_fuse_hang: open /dev/fuse");
    return 1;
  }
  char opts[128];
  snprintf(opts, sizeof opts, "fd=%d,rootmode=40000,user_id=0,group_id=0", fuse_fd);
  if (mount("fault-fuse-hang", argv[1], "fuse", MS_NOSUID | MS_NODEV, opts) != 0) {
    perror("fault_fuse_hang: mount");
    return 1;
  }
  printf("ready\n");

  static char buf[FUSE_MIN_READ_BUFFER + 65536];
  for (;;) {
    ssize_t n = read(fuse_fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == ENOENT) continue;
      if (errno == ENODEV) return 0; /* unmounted */
      perror("fault_fuse_hang: read /dev/fuse");
      return 1;
    }
    if ((size_t)n < sizeof(struct fuse_in_header)) continue;
    struct fuse_in_header *in = (struct fuse_in_header *)buf;
    switch (in->opcode) {
      case FUSE_INIT: {
        struct fuse_init_in *init = (struct fuse_init_in *)(buf + sizeof *in);
        struct fuse_init_out out;
        memset(&out, 0, sizeof out);
        out.major = FUSE_KERNEL_VERSION;
        out.minor = init->minor < FUSE_KERNEL_MINOR_VERSION ? init->minor
                                                              : FUSE_KERNEL_MINOR_VERSION;
        out.max_readahead = init->max_readahead;
        out.max_write = 4096;
        out.max_background = 16;
        out.congestion_threshold = 12;
        out.time_gran = 1;
        reply(in->unique, 0, &out, sizeof out);
        break;
      }
      case FUSE_GETATTR: {
        struct fuse_attr_out out;
        memset(&out, 0, sizeof out);
        out.attr.ino = in->nodeid;
        out.attr.mode = S_IFDIR | 0755;
        out.attr.nlink = 2;
        reply(in->unique, 0, &out, sizeof out);
        break;
      }
      case FUSE_LOOKUP:
        printf("held %u\n", in->pid);
        break; /* never answered */
      case FUSE_INTERRUPT:
      case FUSE_FORGET:
      case FUSE_BATCH_FORGET:
        break; /* no answer expected (or wanted) */
      case FUSE_DESTROY:
        reply(in->unique, 0, NULL, 0);
        return 0;
      default:
        reply(in->unique, -ENOSYS, NULL, 0);
    }
  }
}
