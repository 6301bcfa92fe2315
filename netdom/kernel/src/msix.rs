//! virtio-net's queue interrupts: which MSI-X entry each queue signals.
//! The routing itself and the pirq list are every driver domain's
//! (`xcp_runtime::msix`).

pub use xcp_runtime::msix::{route, CommonConfig, Pirqs, RouteError, MAX_PIRQS, NO_VECTOR};

/// virtio-net's receive queue.
pub const QUEUE_RECEIVE: u16 = 0;
/// virtio-net's transmit queue.
pub const QUEUE_TRANSMIT: u16 = 1;

/// Which MSI-X entry each queue signals: receive on entry 0, transmit on
/// entry 1 (entry 0 too when there is only one); configuration changes on
/// none (netdom does not act on them).
pub fn routes(entries: usize) -> [(u16, u16); 2] {
    let transmit = if entries > 1 { 1 } else { 0 };
    [(QUEUE_RECEIVE, 0), (QUEUE_TRANSMIT, transmit)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_on_entry_0_transmit_on_1_or_shared() {
        assert_eq!(routes(4), [(QUEUE_RECEIVE, 0), (QUEUE_TRANSMIT, 1)]);
        assert_eq!(routes(2), [(0, 0), (1, 1)]);
        assert_eq!(routes(1), [(0, 0), (1, 0)]);
    }
}
