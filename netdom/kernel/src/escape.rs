//! The `dma-escape` self-test: the device was handed a foreign machine
//! address (dom0's bait frame) as netdom's first receive buffer; the first
//! frame that arrives must not reach that frame.
//!
//! Read first: netdom/DESIGN.md ("DMA confinement"). With
//! VIRTIO_F_ACCESS_PLATFORM negotiated, QEMU translates every buffer
//! address through the emulated VT-d, where Xen maps only netdom's own
//! frames. What happens on the rig (QEMU 7.2, Xen 4.17): the translation
//! fails, QEMU falls back to its bounce buffer, and the write-back is
//! refused again, so the device believes it filled the buffer and
//! completes the receive, while the bytes land nowhere; VT-d records the
//! fault and Xen logs it (`[VT-D]DMAR:[DMA Write] Request device
//! [0000:00:05.0] fault addr <bait>`). Only dom0 can tell that its frame is
//! unchanged, so netdom reports the completion and then shows that the
//! device still works for its own buffers (an ARP exchange with the
//! gateway), and dom0 judges.

use log::{error, info};
use netdom::arp::{Ipv4, Mac};

use crate::domain::Net;
use crate::irq::Wake;

const WAIT_NS: u64 = 10_000_000_000;

fn stop(why: core::fmt::Arguments<'_>) -> ! {
    error!("FAIL: {why}");
    loop {
        xcp_runtime::event_loop::idle();
    }
}

/// Waits for the first receive (the one into `target`), gives the buffer
/// back, then hears the gateway through netdom's own buffers; never
/// returns.
pub fn probe(net: &mut Net, mac: Mac, ip: Ipv4, gateway: Ipv4, wake: &mut Wake, target: u64) -> ! {
    info!(
        "dma-escape: receive buffer 0 is at {target:#x}, a frame netdom does not own; \
         waiting for the first frame"
    );
    let deadline = xcp_runtime::time::now_ns() + WAIT_NS;
    let mut asked = false;
    let rx = loop {
        if let Ok(rx) = net.receive() {
            break rx;
        }
        if !asked {
            // Something for the device to receive: the gateway's reply.
            // (Logged first: `send` spins until the device took the frame,
            // and the reply may be in by then.)
            info!("dma-escape: sending an ARP request for {gateway}");
            let frame = netdom::arp::request(mac, ip, gateway);
            let mut tx = net.new_tx_buffer(frame.len());
            tx.packet_mut().copy_from_slice(&frame);
            if let Err(e) = net.send(tx) {
                stop(format_args!("transmit: {e}"));
            }
            asked = true;
        }
        let now = xcp_runtime::time::now_ns();
        if now >= deadline {
            stop(format_args!(
                "dma-escape: no frame arrived in {} s",
                WAIT_NS / 1_000_000_000
            ));
        }
        wake.wait(deadline);
    };
    // The device wrote (or tried to write) at `target`; netdom's own
    // buffer behind the token was never handed to it.
    let len = rx.packet_len();
    let own = rx.packet().iter().filter(|b| **b != 0).count();
    info!(
        "dma-escape: the device completed a {len}-byte receive into {target:#x} \
         ({own} non-zero bytes in netdom's own buffer)"
    );
    if let Err(e) = net.recycle_rx_buffer(rx) {
        stop(format_args!("recycle a receive buffer: {e}"));
    }
    // netdom's own buffers still work: the ordinary ARP proof.
    crate::domain::arp_gateway(net, mac, ip, gateway, wake);
    info!("dma-escape: done");
    loop {
        xcp_runtime::event_loop::idle();
    }
}
