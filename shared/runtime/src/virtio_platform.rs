//! A virtio `Transport` that also accepts VIRTIO_F_ACCESS_PLATFORM.
//!
//! Read first: virtio 1.2 §6 "Reserved Feature Bits" (VIRTIO_F_ACCESS_PLATFORM,
//! bit 33), virtio-drivers 0.13 `transport::Transport::begin_init`.
//!
//! A device that offers ACCESS_PLATFORM does its DMA through the platform's
//! IOMMU (QEMU: `iommu_platform=on`, translated by the emulated VT-d). The
//! spec: "A driver SHOULD accept VIRTIO_F_ACCESS_PLATFORM if it is offered"
//! and "If VIRTIO_F_ACCESS_PLATFORM has been negotiated, a driver MUST
//! supply addresses that the device can use" — QEMU refuses FEATURES_OK
//! when it is offered and not accepted. virtio-drivers 0.13's drivers never
//! ask for it (it is not in their supported features), so this wrapper
//! delegates every method to the transport inside and adds the bit to the
//! driver features when, and only when, the device offered it.
//!
//! Accepting it is honest for the runtime's `XenHal`: the addresses it gives
//! the device are machine addresses, and for a PV domain with an assigned
//! device Xen's IOMMU context maps each of the domain's frames at its
//! machine address (dfn = mfn), so they are exactly what the device can use
//! through the IOMMU, and nothing else is.
//!
//! Pure; host-tested against a recording transport.

use alloc::rc::Rc;
use core::cell::Cell;

use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{PhysAddr, Result};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// VIRTIO_F_ACCESS_PLATFORM (virtio 1.2 §6).
pub const ACCESS_PLATFORM: u64 = 1 << 33;
/// VIRTIO_F_VERSION_1.
pub const VERSION_1: u64 = 1 << 32;

/// What the device offered and the driver accepted, readable after the
/// transport moved into a driver.
#[derive(Clone, Debug, Default)]
pub struct Negotiated(Rc<Cell<(u64, u64)>>);

impl Negotiated {
    /// The device's features, as last read.
    pub fn offered(&self) -> u64 {
        self.0.get().0
    }

    /// The driver's features, as last written.
    pub fn accepted(&self) -> u64 {
        self.0.get().1
    }
}

/// `T` with ACCESS_PLATFORM accepted when offered.
#[derive(Debug)]
pub struct AccessPlatform<T> {
    inner: T,
    log: Negotiated,
}

impl<T: Transport> AccessPlatform<T> {
    /// Wraps `inner`; the handle reports the negotiation later.
    pub fn new(inner: T) -> (Self, Negotiated) {
        let log = Negotiated::default();
        (
            AccessPlatform {
                inner,
                log: log.clone(),
            },
            log,
        )
    }
}

/// Names of the feature bits netdom's log shows (device-independent ones
/// and virtio-net's), lowest first.
pub fn feature_names(bits: u64) -> alloc::vec::Vec<&'static str> {
    const NAMES: [(u32, &str); 10] = [
        (0, "CSUM"),
        (1, "GUEST_CSUM"),
        (5, "MAC"),
        (16, "STATUS"),
        (28, "RING_INDIRECT_DESC"),
        (29, "RING_EVENT_IDX"),
        (32, "VERSION_1"),
        (33, "ACCESS_PLATFORM"),
        (34, "RING_PACKED"),
        (35, "IN_ORDER"),
    ];
    NAMES
        .iter()
        .filter(|(bit, _)| bits & (1 << bit) != 0)
        .map(|(_, name)| *name)
        .collect()
}

impl<T: Transport> Transport for AccessPlatform<T> {
    fn device_type(&self) -> DeviceType {
        self.inner.device_type()
    }

    fn read_device_features(&mut self) -> u64 {
        let offered = self.inner.read_device_features();
        self.log.0.set((offered, self.log.accepted()));
        offered
    }

    fn write_driver_features(&mut self, driver_features: u64) {
        // `begin_init` reads the device's features just before writing the
        // driver's, through this wrapper.
        let offered = self.log.offered();
        let features = driver_features | (offered & ACCESS_PLATFORM);
        self.log.0.set((offered, features));
        self.inner.write_driver_features(features)
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.inner.max_queue_size(queue)
    }

    fn notify(&mut self, queue: u16) {
        self.inner.notify(queue)
    }

    fn get_status(&self) -> DeviceStatus {
        self.inner.get_status()
    }

    fn set_status(&mut self, status: DeviceStatus) {
        self.inner.set_status(status)
    }

    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        self.inner.set_guest_page_size(guest_page_size)
    }

    fn requires_legacy_layout(&self) -> bool {
        self.inner.requires_legacy_layout()
    }

    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        self.inner
            .queue_set(queue, size, descriptors, driver_area, device_area)
    }

    fn queue_unset(&mut self, queue: u16) {
        self.inner.queue_unset(queue)
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        self.inner.queue_used(queue)
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        self.inner.ack_interrupt()
    }

    fn read_config_generation(&self) -> u32 {
        self.inner.read_config_generation()
    }

    fn read_config_space<V: FromBytes + IntoBytes>(&self, offset: usize) -> Result<V> {
        self.inner.read_config_space(offset)
    }

    fn write_config_space<V: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: V,
    ) -> Result<()> {
        self.inner.write_config_space(offset, value)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use virtio_drivers::Error;

    /// A transport that offers `offered` and records what it is told.
    struct Recorder {
        offered: u64,
        written: Rc<Cell<Option<u64>>>,
        status: Rc<Cell<u32>>,
    }

    impl Transport for Recorder {
        fn device_type(&self) -> DeviceType {
            DeviceType::Network
        }
        fn read_device_features(&mut self) -> u64 {
            self.offered
        }
        fn write_driver_features(&mut self, driver_features: u64) {
            self.written.set(Some(driver_features));
        }
        fn max_queue_size(&mut self, _queue: u16) -> u32 {
            256
        }
        fn notify(&mut self, _queue: u16) {}
        fn get_status(&self) -> DeviceStatus {
            DeviceStatus::from_bits_truncate(self.status.get())
        }
        fn set_status(&mut self, status: DeviceStatus) {
            self.status.set(status.bits());
        }
        fn set_guest_page_size(&mut self, _guest_page_size: u32) {}
        fn requires_legacy_layout(&self) -> bool {
            false
        }
        fn queue_set(&mut self, _: u16, _: u32, _: PhysAddr, _: PhysAddr, _: PhysAddr) {}
        fn queue_unset(&mut self, _queue: u16) {}
        fn queue_used(&mut self, _queue: u16) -> bool {
            false
        }
        fn ack_interrupt(&mut self) -> InterruptStatus {
            InterruptStatus::empty()
        }
        fn read_config_generation(&self) -> u32 {
            0
        }
        fn read_config_space<V: FromBytes + IntoBytes>(&self, _offset: usize) -> Result<V> {
            Err(Error::ConfigSpaceMissing)
        }
        fn write_config_space<V: IntoBytes + Immutable>(
            &mut self,
            _offset: usize,
            _value: V,
        ) -> Result<()> {
            Err(Error::ConfigSpaceMissing)
        }
    }

    bitflags::bitflags! {
        /// A driver's supported features, as virtio-net's (no ACCESS_PLATFORM).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        struct NetLike: u64 {
            const MAC = 1 << 5;
            const RING_EVENT_IDX = 1 << 29;
            const VERSION_1 = 1 << 32;
        }
    }

    fn negotiate(offered: u64) -> (Option<u64>, NetLike, Negotiated, u32) {
        let written = Rc::new(Cell::new(None));
        let status = Rc::new(Cell::new(0));
        let (mut t, log) = AccessPlatform::new(Recorder {
            offered,
            written: written.clone(),
            status: status.clone(),
        });
        let negotiated = t.begin_init(NetLike::all());
        (written.get(), negotiated, log, status.get())
    }

    #[test]
    fn accepts_access_platform_only_when_offered() {
        let with = VERSION_1 | ACCESS_PLATFORM | (1 << 5) | (1 << 0);
        let (written, negotiated, log, status) = negotiate(with);
        assert_eq!(written, Some(VERSION_1 | ACCESS_PLATFORM | (1 << 5)));
        assert_eq!(negotiated, NetLike::VERSION_1 | NetLike::MAC);
        assert_eq!(log.offered(), with);
        assert_eq!(log.accepted(), VERSION_1 | ACCESS_PLATFORM | (1 << 5));
        // ACKNOWLEDGE | DRIVER | FEATURES_OK, as begin_init leaves it.
        assert_eq!(status, 0xb);

        let without = VERSION_1 | (1 << 29);
        let (written, _, log, _) = negotiate(without);
        assert_eq!(written, Some(without));
        assert_eq!(log.accepted() & ACCESS_PLATFORM, 0);
    }

    #[test]
    fn names_the_bits_it_knows() {
        assert_eq!(
            feature_names(VERSION_1 | ACCESS_PLATFORM | (1 << 5) | (1 << 40)),
            ["MAC", "VERSION_1", "ACCESS_PLATFORM"]
        );
    }
}
