/* Prints blkif.h's sizes, offsets, constants and the bytes of sample structs,
 * one "name value" per line, for tests/c_header.rs to compare with wire.rs. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <xen/xen.h>
#include <xen/io/blkif.h>

#define P(name, v) printf("%s %ld\n", name, (long)(v))

static void bytes(const char *name, const void *p, size_t n)
{
    const unsigned char *b = p;
    printf("%s ", name);
    for (size_t i = 0; i < n; i++)
        printf("%02x", b[i]);
    printf("\n");
}

int main(void)
{
    P("sizeof_segment", sizeof(struct blkif_request_segment));
    P("sizeof_request", sizeof(struct blkif_request));
    P("sizeof_discard", sizeof(struct blkif_request_discard));
    P("sizeof_indirect", sizeof(struct blkif_request_indirect));
    P("sizeof_response", sizeof(struct blkif_response));
    P("off_request_id", offsetof(struct blkif_request, id));
    P("off_request_seg", offsetof(struct blkif_request, seg));
    P("off_discard_nr_sectors", offsetof(struct blkif_request_discard, nr_sectors));
    P("off_indirect_handle", offsetof(struct blkif_request_indirect, handle));
    P("off_indirect_grefs", offsetof(struct blkif_request_indirect, indirect_grefs));
    P("off_response_status", offsetof(struct blkif_response, status));
    P("ring_size_order0", __CONST_RING_SIZE(blkif, 4096));
    P("ring_size_order2", __CONST_RING_SIZE(blkif, 4096 << 2));
    P("BLKIF_OP_READ", BLKIF_OP_READ);
    P("BLKIF_OP_WRITE", BLKIF_OP_WRITE);
    P("BLKIF_OP_WRITE_BARRIER", BLKIF_OP_WRITE_BARRIER);
    P("BLKIF_OP_FLUSH_DISKCACHE", BLKIF_OP_FLUSH_DISKCACHE);
    P("BLKIF_OP_RESERVED_1", BLKIF_OP_RESERVED_1);
    P("BLKIF_OP_DISCARD", BLKIF_OP_DISCARD);
    P("BLKIF_OP_INDIRECT", BLKIF_OP_INDIRECT);
    P("BLKIF_MAX_SEGMENTS_PER_REQUEST", BLKIF_MAX_SEGMENTS_PER_REQUEST);
    P("BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST", BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
    P("BLKIF_DISCARD_SECURE", BLKIF_DISCARD_SECURE);
    P("BLKIF_RSP_EOPNOTSUPP", BLKIF_RSP_EOPNOTSUPP);
    P("BLKIF_RSP_ERROR", BLKIF_RSP_ERROR);
    P("BLKIF_RSP_OKAY", BLKIF_RSP_OKAY);
    P("VDISK_CDROM", VDISK_CDROM);
    P("VDISK_REMOVABLE", VDISK_REMOVABLE);
    P("VDISK_READONLY", VDISK_READONLY);

    struct blkif_request rq;
    memset(&rq, 0, sizeof(rq));
    rq.operation = BLKIF_OP_WRITE; rq.nr_segments = 2; rq.handle = 0x0203;
    rq.id = 0x1122334455667788ULL; rq.sector_number = 0x99;
    rq.seg[0].gref = 0xaabbccdd; rq.seg[0].first_sect = 1; rq.seg[0].last_sect = 6;
    rq.seg[1].gref = 0x01020304; rq.seg[1].first_sect = 0; rq.seg[1].last_sect = 7;
    bytes("request", &rq, sizeof(rq));

    struct blkif_request_discard d;
    memset(&d, 0, sizeof(d));
    d.operation = BLKIF_OP_DISCARD; d.flag = BLKIF_DISCARD_SECURE; d.handle = 5;
    d.id = 42; d.sector_number = 1000; d.nr_sectors = 0x123456789ULL;
    bytes("discard", &d, sizeof(d));

    struct blkif_request_indirect in;
    memset(&in, 0, sizeof(in));
    in.operation = BLKIF_OP_INDIRECT; in.indirect_op = BLKIF_OP_READ;
    in.nr_segments = 300; in.id = 7; in.sector_number = 8; in.handle = 9;
    in.indirect_grefs[0] = 10; in.indirect_grefs[1] = 11;
    bytes("indirect", &in, sizeof(in));

    struct blkif_response rs;
    memset(&rs, 0, sizeof(rs));
    rs.id = 0xdeadbeefcafef00dULL; rs.operation = BLKIF_OP_FLUSH_DISKCACHE;
    rs.status = BLKIF_RSP_EOPNOTSUPP;
    bytes("response", &rs, sizeof(rs));
    return 0;
}
