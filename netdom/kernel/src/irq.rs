//! netdom's NIC interrupts: the MSI-X entries dom0 mapped to our pirqs
//! (`pci-pirqs=`), bound to event channels, and the sleep that waits on
//! them (and on dom0's relay port) instead of a 1 ms poll.
//!
//! Read first: netdom/DESIGN.md ("Interrupts"); Xen 4.17
//! `xen/arch/x86/irq.c` (`pirq_guest_bind`, `arch_evtchn_bind_pirq`,
//! `irq_acktype`), `physdev.c` (`PHYSDEVOP_eoi`, `irq_status_query`).
//! The event loop keeps upcalls masked and sleeps in SCHEDOP_poll, which
//! Xen wakes when a polled port becomes pending.

use alloc::vec::Vec;

use log::{debug, warn};
use netdom::args::Args;
use netdom::msix;
use xcp_runtime::mmio::MmioRegion;

use crate::domain::Net;

/// Longest sleep without interrupts: the NIC is polled this often.
pub const POLL_NS: u64 = 1_000_000;
/// Longest sleep with interrupts. A safety net, not the datapath:
/// virtio-drivers 0.13 publishes `used_event` (VIRTIO_F_EVENT_IDX) with a
/// release store and then re-reads the used index with no full barrier in
/// between, so in principle a frame can land just as we go to sleep with
/// no interrupt for it; this bounds such a stall.
pub const SAFETY_POLL_NS: u64 = 100_000_000;

/// What woke us.
#[derive(Clone, Copy, Debug, Default)]
pub struct Woken {
    /// A NIC interrupt.
    pub nic: bool,
    /// dom0's relay port.
    pub relay: bool,
}

/// Where netdom sleeps: on the NIC's pirq ports (if any) and the relay
/// port, or for at most `POLL_NS` without interrupts.
pub struct Wake {
    /// (pirq, port) of each bound MSI-X entry.
    pirqs: Vec<(u32, u32)>,
    /// The pirq ports, then the relay port if set.
    ports: Vec<u32>,
    relay: Option<u32>,
    /// Wake-ups with a NIC port pending.
    pub interrupts: u64,
    /// Wake-ups at the deadline.
    pub timeouts: u64,
}

impl Wake {
    /// Polling only.
    pub fn polling() -> Wake {
        Wake {
            pirqs: Vec::new(),
            ports: Vec::new(),
            relay: None,
            interrupts: 0,
            timeouts: 0,
        }
    }

    /// True when the NIC interrupts.
    pub fn has_interrupts(&self) -> bool {
        !self.pirqs.is_empty()
    }

    /// The longest sleep the NIC allows.
    pub fn max_sleep_ns(&self) -> u64 {
        if self.has_interrupts() {
            SAFETY_POLL_NS
        } else {
            POLL_NS
        }
    }

    /// Also wakes on dom0's relay port.
    pub fn watch_relay(&mut self, port: u32) {
        self.relay = Some(port);
        self.ports.push(port);
    }

    /// Also wakes on the xenstore port (watch events). It must come after
    /// the relay's, which [`Wake::wait`] finds by position.
    pub fn watch_store(&mut self, port: u32) {
        self.ports.push(port);
    }

    /// Sleeps until a NIC interrupt, the relay port, or `deadline` (ns,
    /// capped at `max_sleep_ns` from now).
    pub fn wait(&mut self, deadline: u64) -> Woken {
        self.wait_with(deadline, &[])
    }

    /// [`Wake::wait`], also woken by `extra` ports (guests' event
    /// channels), whose pending bits it clears: the caller looks at every
    /// guest after any wake-up. Xen polls at most 64 ports at once
    /// (`poll_ports`); beyond that netdom sleeps until any event.
    pub fn wait_with(&mut self, deadline: u64, extra: &[u32]) -> Woken {
        let now = xcp_runtime::time::now_ns();
        let deadline = deadline.min(now + self.max_sleep_ns()).max(1);
        let fired = if self.ports.is_empty() && extra.is_empty() {
            xcp_runtime::event_loop::sleep_until(deadline);
            0
        } else if self.ports.len() + extra.len() <= 64 {
            let mut all = self.ports.clone();
            all.extend_from_slice(extra);
            xcp_runtime::event_loop::poll_ports(&all, deadline)
        } else {
            let pending = |p: &u32| xcp_runtime::evtchn::is_pending(*p);
            if !self.ports.iter().chain(extra).any(pending) {
                xcp_runtime::event_loop::sleep_until(deadline);
            }
            for &p in extra {
                xcp_runtime::evtchn::test_and_clear_pending(p);
            }
            self.ports
                .iter()
                .enumerate()
                .fold(0u64, |mask, (i, &port)| {
                    if xcp_runtime::evtchn::test_and_clear_pending(port) {
                        mask | 1 << i
                    } else {
                        mask
                    }
                })
        };
        let mut woken = Woken::default();
        for (i, &(pirq, _)) in self.pirqs.iter().enumerate() {
            if fired & (1 << i) != 0 {
                woken.nic = true;
                if let Err(e) = xcp_runtime::evtchn::eoi_pirq(pirq) {
                    warn!("EOI of pirq {pirq}: {e}");
                }
            }
        }
        woken.relay = self.relay.is_some() && fired & (1 << self.pirqs.len()) != 0;
        if woken.nic {
            self.interrupts += 1;
            if self.interrupts == 1 {
                // The proof MSI-X works (the QEMU tests look for it); the
                // counts themselves are dom0's `stats` command.
                debug!("first NIC interrupt wake-up");
            }
        } else if fired == 0 {
            self.timeouts += 1;
        }
        woken
    }
}

/// Routes the NIC's queues to MSI-X entries and binds the pirqs dom0
/// mapped for them; polling (with a warning saying why) if anything is
/// missing or refused.
pub fn setup(args: &Args, config: &[u8; 256], bars: &[(usize, MmioRegion)], net: &mut Net) -> Wake {
    let Some(pirqs) = args.pirqs else {
        debug!(
            "no pirqs from dom0: polling the NIC every {} us",
            POLL_NS / 1000
        );
        return Wake::polling();
    };
    match bind(args, config, bars, pirqs.as_slice()) {
        Ok(wake) => {
            // Ask for used-buffer notifications (a no-op with
            // VIRTIO_F_EVENT_IDX, where `used_event` already asks).
            net.enable_interrupts();
            wake
        }
        Err(why) => {
            warn!(
                "MSI-X not used ({why}): polling the NIC every {} us",
                POLL_NS / 1000
            );
            Wake::polling()
        }
    }
}

fn bind(
    args: &Args,
    config: &[u8; 256],
    bars: &[(usize, MmioRegion)],
    pirqs: &[u32],
) -> Result<Wake, alloc::string::String> {
    let device = xcp_runtime::device_args::DeviceArgs {
        bdf: args.bdf,
        config_gref: args.config_gref,
        bar_sizes: args.bar_sizes,
    };
    let bound = xcp_runtime::assigned::bind_msix(&device, config, bars, pirqs, |entries| {
        msix::routes(entries).to_vec()
    })?;
    let mut wake = Wake::polling();
    for &(pirq, port) in &bound.pirqs {
        wake.pirqs.push((pirq, port));
        wake.ports.push(port);
    }
    let listed: Vec<_> = wake.pirqs.iter().map(|&(p, _)| p).collect();
    let ports: Vec<_> = wake.pirqs.iter().map(|&(_, p)| p).collect();
    debug!(
        "MSI-X: {} vectors bound as pirqs {listed:?} (ports {ports:?}); rx queue -> entry {}, tx queue -> entry {}; safety poll every {} ms",
        wake.pirqs.len(),
        bound.routes[0].1,
        bound.routes[1].1,
        SAFETY_POLL_NS / 1_000_000
    );
    Ok(wake)
}
