/* Prints netif.h's sizes, constants and the bytes of sample structs, one
 * "name value" per line, for tests/c_header.rs to compare with wire.rs. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <xen/xen.h>
#include <xen/io/netif.h>

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
    P("sizeof_tx_request", sizeof(struct netif_tx_request));
    P("sizeof_tx_response", sizeof(struct netif_tx_response));
    P("sizeof_rx_request", sizeof(struct netif_rx_request));
    P("sizeof_rx_response", sizeof(struct netif_rx_response));
    P("sizeof_extra_info", sizeof(struct netif_extra_info));
    P("tx_ring_size", __CONST_RING_SIZE(netif_tx, 4096));
    P("rx_ring_size", __CONST_RING_SIZE(netif_rx, 4096));
    P("XEN_NETIF_NR_SLOTS_MIN", XEN_NETIF_NR_SLOTS_MIN);
    P("XEN_NETIF_MAX_TX_SIZE", XEN_NETIF_MAX_TX_SIZE);
    P("NETTXF_csum_blank", NETTXF_csum_blank);
    P("NETTXF_data_validated", NETTXF_data_validated);
    P("NETTXF_more_data", NETTXF_more_data);
    P("NETTXF_extra_info", NETTXF_extra_info);
    P("NETRXF_data_validated", NETRXF_data_validated);
    P("NETRXF_csum_blank", NETRXF_csum_blank);
    P("NETRXF_more_data", NETRXF_more_data);
    P("NETRXF_extra_info", NETRXF_extra_info);
    P("XEN_NETIF_EXTRA_TYPE_NONE", XEN_NETIF_EXTRA_TYPE_NONE);
    P("XEN_NETIF_EXTRA_TYPE_GSO", XEN_NETIF_EXTRA_TYPE_GSO);
    P("XEN_NETIF_EXTRA_TYPE_MCAST_ADD", XEN_NETIF_EXTRA_TYPE_MCAST_ADD);
    P("XEN_NETIF_EXTRA_TYPE_MCAST_DEL", XEN_NETIF_EXTRA_TYPE_MCAST_DEL);
    P("XEN_NETIF_EXTRA_TYPE_HASH", XEN_NETIF_EXTRA_TYPE_HASH);
    P("XEN_NETIF_EXTRA_TYPE_MAX", XEN_NETIF_EXTRA_TYPE_MAX);
    P("XEN_NETIF_EXTRA_FLAG_MORE", XEN_NETIF_EXTRA_FLAG_MORE);
    P("XEN_NETIF_GSO_TYPE_NONE", XEN_NETIF_GSO_TYPE_NONE);
    P("XEN_NETIF_GSO_TYPE_TCPV4", XEN_NETIF_GSO_TYPE_TCPV4);
    P("XEN_NETIF_GSO_TYPE_TCPV6", XEN_NETIF_GSO_TYPE_TCPV6);
    P("NETIF_RSP_DROPPED", NETIF_RSP_DROPPED);
    P("NETIF_RSP_ERROR", NETIF_RSP_ERROR);
    P("NETIF_RSP_OKAY", NETIF_RSP_OKAY);
    P("NETIF_RSP_NULL", NETIF_RSP_NULL);

    struct netif_tx_request txq;
    memset(&txq, 0, sizeof(txq));
    txq.gref = 0x12345678; txq.offset = 0x0102; txq.flags = 0x0d;
    txq.id = 0xbeef; txq.size = 1514;
    bytes("tx_request", &txq, sizeof(txq));

    struct netif_tx_response txr = { .id = 0x0a0b, .status = NETIF_RSP_DROPPED };
    bytes("tx_response", &txr, sizeof(txr));

    struct netif_rx_request rxq;
    memset(&rxq, 0, sizeof(rxq));
    rxq.id = 0x0304; rxq.gref = 0xcafe0001;
    bytes("rx_request", &rxq, sizeof(rxq));

    struct netif_rx_response rxr = { .id = 7, .offset = 16, .flags = 0x5, .status = 4000 };
    bytes("rx_response", &rxr, sizeof(rxr));

    struct netif_extra_info ex;
    memset(&ex, 0, sizeof(ex));
    ex.type = XEN_NETIF_EXTRA_TYPE_GSO; ex.flags = XEN_NETIF_EXTRA_FLAG_MORE;
    ex.u.gso.size = 1448; ex.u.gso.type = XEN_NETIF_GSO_TYPE_TCPV6;
    ex.u.gso.features = 0x0201;
    bytes("extra_gso", &ex, sizeof(ex));
    return 0;
}
