/* The guest's side of `cargo xtask bench disk`, compiled at bench time with
 * `cc -static -O2 -pthread` and packed into the guest initramfs (busybox's
 * dd neither times finer than a second nor keeps several requests in
 * flight). Every access is O_DIRECT on the raw block device (no
 * filesystem, no page cache).
 *
 *   db seqwrite DEV BYTES          writes BYTES from offset 0 in 1 MiB
 *                                  requests, then fsync: "bytes seconds"
 *   db seqread DEV BYTES           reads them back in 1 MiB requests:
 *                                  "bytes seconds"
 *   db randread DEV REGION SECS QD
 *   db randwrite DEV REGION SECS QD
 *                                  QD threads, each with one 4 KiB pread
 *                                  (pwrite) at a time at random 4 KiB-aligned
 *                                  offsets below REGION, for SECS seconds
 *                                  (writes: then fsync, in the time):
 *                                  "ops seconds"
 *
 * Times are CLOCK_MONOTONIC in the guest. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

struct worker {
    pthread_t thread;
    int fd;
    int write;
    long long blocks;
    double until;
    uint64_t seed;
    long long ops;
};

static void *random_io(void *arg) {
    struct worker *w = arg;
    unsigned char *buf = aligned(SMALL, 0xa5);
    uint64_t x = w->seed;
    long long ops = 0;
    while (now() < w->until) {
        /* splitmix64 */
        uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        off_t off = (off_t)(z % (uint64_t)w->blocks) * SMALL;
        ssize_t n = w->write ? pwrite(w->fd, buf, SMALL, off) : pread(w->fd, buf, SMALL, off);
        if (n < 0 && errno == EINTR) continue;
        if (n != SMALL) die(w->write ? "pwrite" : "pread");
        ops++;
    }
    w->ops = ops;
    return NULL;
}

static void random_test(const char *dev, long long region, double secs, int qd, int write) {
    if (qd < 1 || qd > MAX_QD) {
        fprintf(stderr, "queue depth 1..%d\n", MAX_QD);
        exit(2);
    }
    int fd = open_dev(dev, write);
    static struct worker w[MAX_QD];
    double t0 = now();
    for (int i = 0; i < qd; i++) {
        w[i] = (struct worker){.fd = fd, .write = write, .blocks = region / SMALL,
                               .until = t0 + secs, .seed = (uint64_t)(t0 * 1e9) + 7919ULL * i};
        if (pthread_create(&w[i].thread, NULL, random_io, &w[i]) != 0) die("pthread_create");
    }
    long long ops = 0;
    for (int i = 0; i < qd; i++) {
        pthread_join(w[i].thread, NULL);
        ops += w[i].ops;
    }
    if (write && fsync(fd) != 0) die("fsync");
    double t = now() - t0;
    printf("%lld %.6f\n", ops, t);
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
