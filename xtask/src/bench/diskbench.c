/* The guest's side of `cargo xtask bench disk`, compiled at bench time with
 * `cc -static -O2` and packed into the guest initramfs (busybox's dd
 * neither times finer than a second nor keeps several requests in flight).
 * Every access is O_DIRECT on the raw block device (no filesystem, no page
 * cache).
 *
 *   db seqwrite DEV BYTES          writes BYTES from offset 0 in 1 MiB
 *                                  requests, then fsync: "bytes seconds"
 *   db seqread DEV BYTES           reads them back in 1 MiB requests:
 *                                  "bytes seconds"
 *   db randread DEV REGION SECS QD
 *   db randwrite DEV REGION SECS QD
 *                                  QD 4 KiB reads (writes) in flight at
 *                                  random 4 KiB-aligned offsets below
 *                                  REGION, for SECS seconds, through Linux's
 *                                  native AIO (io_submit, raw syscalls: no
 *                                  libaio, no threads), each completion
 *                                  followed by a new request (writes: then
 *                                  fsync, in the time): "ops seconds"
 *
 * Times are CLOCK_MONOTONIC in the guest. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BIG (1 << 20)
#define SMALL 4096
#define MAX_QD 64

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static int open_dev(const char *dev, int write) {
    int fd = open(dev, (write ? O_RDWR : O_RDONLY) | O_DIRECT);
    if (fd < 0) die(dev);
    return fd;
}

static void *aligned(size_t n, unsigned char fill) {
    void *p;
    if (posix_memalign(&p, 4096, n) != 0) die("posix_memalign");
    memset(p, fill, n);
    return p;
}

static void sequential(const char *dev, long long bytes, int write) {
    int fd = open_dev(dev, write);
    unsigned char *buf = aligned(BIG, 0x5a);
    double t0 = now();
    for (long long off = 0; off < bytes; off += BIG) {
        /* A different first word per MiB: no two blocks alike. */
        if (write) memcpy(buf, &off, sizeof off);
        ssize_t n = write ? pwrite(fd, buf, BIG, off) : pread(fd, buf, BIG, off);
        if (n < 0 && errno == EINTR) {
            off -= BIG;
            continue;
        }
        if (n != BIG) die(write ? "pwrite" : "pread");
    }
    if (write && fsync(fd) != 0) die("fsync");
    double t = now() - t0;
    printf("%lld %.6f\n", bytes, t);
    close(fd);
}

static uint64_t seed;

/* splitmix64 */
static uint64_t next_random(void) {
    uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void submit(aio_context_t ctx, struct iocb *cb, long long blocks) {
    cb->aio_offset = (long long)(next_random() % (uint64_t)blocks) * SMALL;
    struct iocb *one[1] = {cb};
    for (;;) {
        long r = syscall(SYS_io_submit, ctx, 1L, one);
        if (r == 1) return;
        if (r < 0 && errno == EINTR) continue;
        die("io_submit");
    }
}

static void random_test(const char *dev, long long region, double secs, int qd, int write) {
    if (qd < 1 || qd > MAX_QD) {
        fprintf(stderr, "queue depth 1..%d\n", MAX_QD);
        exit(2);
    }
    long long blocks = region / SMALL;
    if (blocks < 1) {
        fprintf(stderr, "region below 4 KiB\n");
        exit(2);
    }
    int fd = open_dev(dev, write);
    aio_context_t ctx = 0;
    if (syscall(SYS_io_setup, (long)qd, &ctx) != 0) die("io_setup");
    static struct iocb cbs[MAX_QD];
    struct io_event events[MAX_QD];
    double t0 = now();
    seed = (uint64_t)(t0 * 1e9);
    double until = t0 + secs;
    for (int i = 0; i < qd; i++) {
        cbs[i] = (struct iocb){
            .aio_fildes = (uint32_t)fd,
            .aio_lio_opcode = write ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD,
            .aio_buf = (uint64_t)(uintptr_t)aligned(SMALL, 0xa5),
            .aio_nbytes = SMALL,
        };
        submit(ctx, &cbs[i], blocks);
    }
    long long ops = 0;
    int in_flight = qd;
    while (in_flight > 0) {
        long n = syscall(SYS_io_getevents, ctx, 1L, (long)qd, events, NULL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("io_getevents");
        int again = now() < until;
        for (long i = 0; i < n; i++) {
            if (events[i].res != SMALL) {
                fprintf(stderr, "%s: %lld\n", write ? "write" : "read", (long long)events[i].res);
                exit(1);
            }
            ops++;
            in_flight--;
            if (again) {
                submit(ctx, (struct iocb *)(uintptr_t)events[i].obj, blocks);
                in_flight++;
            }
        }
    }
    if (write && fsync(fd) != 0) die("fsync");
    double t = now() - t0;
    printf("%lld %.6f\n", ops, t);
    syscall(SYS_io_destroy, ctx);
    close(fd);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 4 && strcmp(argv[1], "seqwrite") == 0) {
        sequential(argv[2], atoll(argv[3]), 1);
    } else if (argc == 4 && strcmp(argv[1], "seqread") == 0) {
        sequential(argv[2], atoll(argv[3]), 0);
    } else if (argc == 6 && (strcmp(argv[1], "randread") == 0 || strcmp(argv[1], "randwrite") == 0)) {
        random_test(argv[2], atoll(argv[3]), atof(argv[4]), atoi(argv[5]),
                    strcmp(argv[1], "randwrite") == 0);
    } else {
        fprintf(stderr,
                "usage: db seqwrite|seqread DEV BYTES\n"
                "       db randread|randwrite DEV REGION SECS QD\n");
        return 2;
    }
    return 0;
}
