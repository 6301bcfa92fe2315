/*
 * ring_peer: the C reference for tests/c_peer.rs.
 *
 * Compiled against the installed Xen header /usr/include/xen/io/ring.h and
 * driven by the Rust test: it loads a 4096-byte page and the private ring
 * indexes from files, performs RING_* macro operations named on the command
 * line, prints one result line per operation, and writes page and state back.
 *
 *   ring_peer PAGE STATE OP...
 *   OP: finit | binit | fattach:IDX | battach:IDX | req:ID | push_req | get_req | rsp:ID | push_rsp |
 *       get_rsp | final_req | final_rsp | free | ureq | ursp
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ring.h maps xen_mb() etc. to mb() etc. for the default interface version. */
#define mb()  __sync_synchronize()
#define rmb() __sync_synchronize()
#define wmb() __sync_synchronize()
#include <xen/io/ring.h>

struct test_req { uint64_t id; uint32_t op; uint32_t len; };
struct test_rsp { uint32_t id; int32_t status; uint32_t extra; };
DEFINE_RING_TYPES(test, struct test_req, struct test_rsp);

_Static_assert(sizeof(struct test_req) == 16, "req size");
_Static_assert(sizeof(struct test_rsp) == 12, "rsp size");
_Static_assert(sizeof(union test_sring_entry) == 16, "slot size");

static union { test_sring_t s; unsigned char b[4096]; } page
    __attribute__((aligned(4096)));

static void load(const char *path, void *buf, size_t n, int must)
{
    FILE *f = fopen(path, "rb");
    if (!f) { if (must) { perror(path); exit(2); } return; }
    if (fread(buf, 1, n, f) != n && must) { fprintf(stderr, "short %s\n", path); exit(2); }
    fclose(f);
}

static void save(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, n, f) != n) { perror(path); exit(2); }
    fclose(f);
}

int main(int argc, char **argv)
{
    test_front_ring_t front;
    test_back_ring_t back;
    /* req_prod_pvt, rsp_cons, rsp_prod_pvt, req_cons */
    uint32_t st[4] = { 0, 0, 0, 0 };
    int i;

    if (argc < 3) { fprintf(stderr, "usage: ring_peer PAGE STATE OP...\n"); return 2; }
    load(argv[1], page.b, sizeof(page.b), 1);
    load(argv[2], st, sizeof(st), 0);
    FRONT_RING_ATTACH(&front, &page.s, 0, 4096);
    BACK_RING_ATTACH(&back, &page.s, 0, 4096);
    front.req_prod_pvt = st[0]; front.rsp_cons = st[1];
    back.rsp_prod_pvt = st[2]; back.req_cons = st[3];

    for (i = 3; i < argc; i++) {
        const char *op = argv[i];
        int flag;
        if (!strcmp(op, "finit")) {
            XEN_FRONT_RING_INIT(&front, &page.s, 4096);
            printf("ok\n");
        } else if (!strcmp(op, "binit")) {
            BACK_RING_INIT(&back, &page.s, 4096);
            printf("ok\n");
        } else if (!strncmp(op, "fattach:", 8)) {
            RING_IDX n = (RING_IDX)strtoul(op + 8, NULL, 10);
            page.s.req_prod = n;
            page.s.rsp_event = n + 1;
            FRONT_RING_ATTACH(&front, &page.s, n, 4096);
            printf("ok\n");
        } else if (!strncmp(op, "battach:", 8)) {
            RING_IDX n = (RING_IDX)strtoul(op + 8, NULL, 10);
            page.s.rsp_prod = n;
            page.s.req_event = n + 1;
            BACK_RING_ATTACH(&back, &page.s, n, 4096);
            printf("ok\n");
        } else if (!strncmp(op, "req:", 4)) {
            if (RING_FULL(&front)) { printf("full\n"); continue; }
            struct test_req *r = RING_GET_REQUEST(&front, front.req_prod_pvt);
            r->id = strtoull(op + 4, NULL, 10);
            r->op = 7;
            r->len = (uint32_t)(r->id * 3);
            front.req_prod_pvt++;
            printf("ok\n");
        } else if (!strcmp(op, "push_req")) {
            RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&front, flag);
            printf("notify %d\n", !!flag);
        } else if (!strcmp(op, "get_req")) {
            struct test_req r;
            if (!RING_HAS_UNCONSUMED_REQUESTS(&back)) { printf("none\n"); continue; }
            RING_COPY_REQUEST(&back, back.req_cons, &r);
            back.req_cons++;
            printf("req %llu %u %u\n", (unsigned long long)r.id, r.op, r.len);
        } else if (!strncmp(op, "rsp:", 4)) {
            struct test_rsp *r = RING_GET_RESPONSE(&back, back.rsp_prod_pvt);
            r->id = (uint32_t)strtoul(op + 4, NULL, 10);
            r->status = -(int32_t)(r->id % 5);
            r->extra = r->id ^ 0xa5a5a5a5u;
            back.rsp_prod_pvt++;
            printf("ok\n");
        } else if (!strcmp(op, "push_rsp")) {
            RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&back, flag);
            printf("notify %d\n", !!flag);
        } else if (!strcmp(op, "get_rsp")) {
            struct test_rsp r;
            if (!RING_HAS_UNCONSUMED_RESPONSES(&front)) { printf("none\n"); continue; }
            RING_COPY_RESPONSE(&front, front.rsp_cons, &r);
            front.rsp_cons++;
            printf("rsp %u %d %u\n", r.id, r.status, r.extra);
        } else if (!strcmp(op, "final_req")) {
            RING_FINAL_CHECK_FOR_REQUESTS(&back, flag);
            printf("work %d\n", !!flag);
        } else if (!strcmp(op, "final_rsp")) {
            RING_FINAL_CHECK_FOR_RESPONSES(&front, flag);
            printf("work %d\n", !!flag);
        } else if (!strcmp(op, "free")) {
            printf("free %u\n", RING_FREE_REQUESTS(&front));
        } else if (!strcmp(op, "ureq")) {
            printf("ureq %u\n", (unsigned)RING_HAS_UNCONSUMED_REQUESTS(&back));
        } else if (!strcmp(op, "ursp")) {
            printf("ursp %u\n", (unsigned)RING_HAS_UNCONSUMED_RESPONSES(&front));
        } else {
            fprintf(stderr, "unknown op %s\n", op);
            return 2;
        }
    }
    st[0] = front.req_prod_pvt; st[1] = front.rsp_cons;
    st[2] = back.rsp_prod_pvt; st[3] = back.req_cons;
    save(argv[1], page.b, sizeof(page.b));
    save(argv[2], st, sizeof(st));
    return 0;
}
