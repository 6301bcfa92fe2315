/* The guests' side of `cargo xtask bench net`, compiled at bench time with
 * `cc -static -O2` and packed into the guest initramfs (busybox has no way
 * to count datagrams or time a transfer finer than /proc/uptime).
 *
 *   nb serve PORT                 TCP server, one request per connection:
 *                                   "G n\n": sends n bytes, closes;
 *                                   "P n\n": reads n bytes, answers "OK\n";
 *                                   "U port secs\n": answers "READY\n", counts
 *                                   UDP datagrams on port for about secs, then
 *                                   answers "count first_to_last_seconds\n".
 *   nb get HOST PORT n            fetches n bytes ("G"): prints "bytes seconds"
 *   nb put HOST PORT n            sends n bytes ("P"): prints "bytes seconds"
 *   nb udp HOST PORT UPORT SECS SIZE
 *                                 asks HOST to count ("U"), sends SIZE-byte
 *                                 datagrams to UPORT for SECS seconds: prints
 *                                 "sent received receiver_seconds"
 *   nb kv HOST PORT LINE          sends LINE to the host's server, prints the
 *                                 answer line (the rendezvous and results).
 *
 * Times are CLOCK_MONOTONIC in the guest, from connect to the last byte. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char buf[1 << 16];

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static int connect_to(const char *host, int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) die("address");
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) die("socket");
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    return s;
}

static void write_all(int s, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(s, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) die("write");
        p += w;
        n -= (size_t)w;
    }
}

/* One line (without its newline) into line; 0 at EOF. */
static int read_line(int s, char *line, size_t cap) {
    size_t n = 0;
    while (n + 1 < cap) {
        char c;
        ssize_t r = read(s, &c, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (c == '\n') {
            line[n] = 0;
            return 1;
        }
        line[n++] = c;
    }
    line[n] = 0;
    return n > 0;
}

static void send_bytes(int s, long long n) {
    while (n > 0) {
        size_t chunk = n < (long long)sizeof buf ? (size_t)n : sizeof buf;
        write_all(s, buf, chunk);
        n -= (long long)chunk;
    }
}

static long long drain(int s, long long want) {
    long long got = 0;
    while (want < 0 || got < want) {
        ssize_t r = read(s, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += r;
    }
    return got;
}

static void count_udp(int c, int port, double secs) {
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    if (u < 0) die("udp socket");
    int size = 4 << 20;
    setsockopt(u, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (bind(u, (struct sockaddr *)&a, sizeof a) < 0) die("udp bind");
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    write_all(c, "READY\n", 6);
    long long count = 0;
    double start = now(), first = 0, last = 0;
    /* Until the sender has been quiet for 2 s after its first datagram, or
     * secs + 10 s in all. */
    for (;;) {
        double t = now();
        if (t - start > secs + 10) break;
        if (count > 0 && t - last > 2) break;
        ssize_t r = recv(u, buf, sizeof buf, 0);
        if (r < 0) continue;
        last = now();
        if (count++ == 0) first = last;
    }
    close(u);
    char line[128];
    int n = snprintf(line, sizeof line, "%lld %.6f\n", count, last - first);
    write_all(c, line, (size_t)n);
}

static void serve(int port) {
    signal(SIGPIPE, SIG_IGN);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(l, 8) < 0) die("listen");
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c < 0) continue;
        char line[128];
        if (read_line(c, line, sizeof line)) {
            long long n = 0;
            int uport = 0;
            double secs = 0;
            if (sscanf(line, "G %lld", &n) == 1) {
                send_bytes(c, n);
            } else if (sscanf(line, "P %lld", &n) == 1) {
                drain(c, n);
                write_all(c, "OK\n", 3);
            } else if (sscanf(line, "U %d %lf", &uport, &secs) == 2) {
                count_udp(c, uport, secs);
            }
        }
        close(c);
    }
}

static void request(const char *host, int port, const char *line) {
    int s = connect_to(host, port);
    write_all(s, line, strlen(line));
    write_all(s, "\n", 1);
    char answer[4096];
    read_line(s, answer, sizeof answer);
    printf("%s\n", answer);
    close(s);
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "serve")) {
        serve(atoi(argv[2]));
    } else if (argc >= 5 && (!strcmp(argv[1], "get") || !strcmp(argv[1], "put"))) {
        long long n = atoll(argv[4]);
        double t0 = now();
        int s = connect_to(argv[2], atoi(argv[3]));
        char line[64];
        snprintf(line, sizeof line, "%c %lld\n", argv[1][0] == 'g' ? 'G' : 'P', n);
        write_all(s, line, strlen(line));
        long long got;
        if (argv[1][0] == 'g') {
            got = drain(s, -1);
        } else {
            send_bytes(s, n);
            got = read_line(s, line, sizeof line) && !strcmp(line, "OK") ? n : 0;
        }
        double t = now() - t0;
        close(s);
        printf("%lld %.6f\n", got, t);
        return got == n ? 0 : 1;
    } else if (argc >= 7 && !strcmp(argv[1], "udp")) {
        int size = atoi(argv[6]);
        double secs = atof(argv[5]);
        int c = connect_to(argv[2], atoi(argv[3]));
        char line[128];
        snprintf(line, sizeof line, "U %s %s\n", argv[4], argv[5]);
        write_all(c, line, strlen(line));
        if (!read_line(c, line, sizeof line) || strcmp(line, "READY")) die("no READY");
        int u = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[4]))};
        inet_pton(AF_INET, argv[2], &a.sin_addr);
        long long sent = 0;
        double t0 = now();
        while (now() - t0 < secs) {
            memcpy(buf, &sent, sizeof sent);
            if (sendto(u, buf, (size_t)size, 0, (struct sockaddr *)&a, sizeof a) == size) sent++;
        }
        if (!read_line(c, line, sizeof line)) die("no count");
        printf("%lld %s\n", sent, line);
    } else if (argc >= 5 && !strcmp(argv[1], "kv")) {
        request(argv[2], atoi(argv[3]), argv[4]);
    } else {
        fprintf(stderr, "usage: nb serve PORT | get|put HOST PORT N | udp HOST PORT UPORT SECS SIZE | kv HOST PORT LINE\n");
        return 2;
    }
    return 0;
}
