//! virtio-drivers' PCI config access over a [`ConfigShadow`]: the one
//! function dom0 handed over answers from its snapshot, every other
//! function reads as absent, and writes follow the shadow's policy (refused
//! ones are logged). Pure; tested on the host with virtio-drivers' own
//! BAR sizing.

use alloc::rc::Rc;
use core::cell::Cell;

use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};

use crate::pci_snapshot::{ConfigShadow, WriteOutcome};

/// Counts of what drivers wrote, for the domain's log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteCounts {
    /// BAR sizing and restore writes, played in the shadow.
    pub bar: u32,
    /// Decode-bit toggles, kept in the shadow.
    pub decode: u32,
    /// Refused writes.
    pub refused: u32,
}

/// A handle on an access's [`WriteCounts`] that stays readable after the
/// access moved into virtio-drivers' `PciRoot`.
#[derive(Clone, Debug, Default)]
pub struct WriteCounter(Rc<Cell<WriteCounts>>);

impl WriteCounter {
    /// The counts so far.
    pub fn get(&self) -> WriteCounts {
        self.0.get()
    }

    fn bump(&self, f: impl FnOnce(&mut WriteCounts)) {
        let mut c = self.0.get();
        f(&mut c);
        self.0.set(c);
    }
}

/// The config space a service domain's driver sees.
#[derive(Debug)]
pub struct SnapshotAccess {
    function: DeviceFunction,
    shadow: ConfigShadow,
    counts: WriteCounter,
}

impl SnapshotAccess {
    /// `shadow` answers for `function`.
    pub fn new(function: DeviceFunction, shadow: ConfigShadow) -> Self {
        SnapshotAccess {
            function,
            shadow,
            counts: WriteCounter::default(),
        }
    }

    /// The function this access serves.
    pub fn function(&self) -> DeviceFunction {
        self.function
    }

    /// What drivers wrote so far, now and later.
    pub fn counter(&self) -> WriteCounter {
        self.counts.clone()
    }
}

impl ConfigurationAccess for SnapshotAccess {
    fn read_word(&self, device_function: DeviceFunction, register_offset: u8) -> u32 {
        if device_function != self.function {
            return u32::MAX;
        }
        self.shadow.read32(register_offset)
    }

    fn write_word(&mut self, device_function: DeviceFunction, register_offset: u8, data: u32) {
        let outcome = if device_function == self.function {
            self.shadow.write32(register_offset, data)
        } else {
            WriteOutcome::Refused
        };
        match outcome {
            WriteOutcome::BarSizing { .. } | WriteOutcome::BarRestored { .. } => {
                self.counts.bump(|c| c.bar += 1)
            }
            WriteOutcome::DecodeToggle { .. } => self.counts.bump(|c| c.decode += 1),
            WriteOutcome::Refused => {
                self.counts.bump(|c| c.refused += 1);
                log::warn!(
                    "pci {device_function}: config write {data:#010x} at {register_offset:#04x} refused"
                );
            }
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        SnapshotAccess {
            function: self.function,
            shadow: self.shadow.clone(),
            counts: self.counts.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::pci_snapshot::tests::virtio_net;
    use virtio_drivers::transport::pci::bus::{BarInfo, MemoryBarType, PciRoot};

    const NIC: DeviceFunction = DeviceFunction {
        bus: 0,
        device: 5,
        function: 0,
    };

    fn root() -> (PciRoot<SnapshotAccess>, WriteCounter) {
        let (bytes, sizes) = virtio_net();
        let shadow = ConfigShadow::new(bytes, sizes).unwrap();
        let access = SnapshotAccess::new(NIC, shadow);
        let counter = access.counter();
        (PciRoot::new(access), counter)
    }

    #[test]
    fn virtio_drivers_sizes_the_bars_dom0_reported() {
        let (mut root, counter) = root();
        let bars = root.bars(NIC).unwrap();
        assert_eq!(
            bars[0],
            Some(BarInfo::IO {
                address: 0xc000,
                size: 0x20
            })
        );
        assert_eq!(
            bars[1],
            Some(BarInfo::Memory {
                address_type: MemoryBarType::Width32,
                prefetchable: false,
                address: 0xfebd_1000,
                size: 0x1000
            })
        );
        assert_eq!(
            bars[4],
            Some(BarInfo::Memory {
                address_type: MemoryBarType::Width64,
                prefetchable: true,
                address: 0xfe00_0000,
                size: 0x4000
            })
        );
        assert_eq!(bars[2], None);
        // Every write was BAR sizing or a decode toggle; nothing refused,
        // and the shadow reads as the snapshot again.
        let counts = counter.get();
        assert_eq!(counts.refused, 0);
        assert!(counts.bar >= 8, "{counts:?}");
        let (status, command) = root.get_status_command(NIC);
        assert_eq!(command.bits(), 7);
        assert!(status.contains(virtio_drivers::transport::pci::bus::Status::CAPABILITIES_LIST));
        root.set_command(
            NIC,
            virtio_drivers::transport::pci::bus::Command::MEMORY_SPACE,
        );
        // Dropping bus mastering is refused: the command stays as dom0 set it.
        assert_eq!(root.get_status_command(NIC).1.bits(), 7);
        assert_eq!(counter.get().refused, 1);
    }

    #[test]
    fn other_functions_are_absent_and_untouchable() {
        let (bytes, sizes) = virtio_net();
        let mut access = SnapshotAccess::new(NIC, ConfigShadow::new(bytes, sizes).unwrap());
        let other = DeviceFunction {
            bus: 0,
            device: 6,
            function: 0,
        };
        assert_eq!(access.read_word(other, 0), u32::MAX);
        access.write_word(other, 0x04, 7);
        assert_eq!(access.counter().get().refused, 1);
    }

    /// The config space dom0 snapshot on the rig (QEMU 0000:00:05.0,
    /// virtio-net-pci under SeaBIOS), as `dom0: SNAPSHOT` lines logged it.
    const QEMU_SNAPSHOT: [&str; 8] = [
        "f41a001007011000000000020000000041c000000000bcfe0000000000000000",
        "0cc0bffe0000000000000000f41a01000000b8fe98000000000000000a010000",
        "0900100104000000000000000010000009401003040000000010000000100000",
        "0950100404000000002000000010000009601402040000000030000000100000",
        "0400000009701405000000000000000000000000000000001184030001000000",
        "0108000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ];

    fn qemu_snapshot() -> [u8; crate::pci_snapshot::CONFIG_BYTES] {
        let hex: std::string::String = QEMU_SNAPSHOT.concat();
        core::array::from_fn(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
    }

    /// Stands in for the device's BAR4 on the host: records what the
    /// transport asks for and hands out addresses in a host buffer.
    struct FakeHal;

    static REQUESTS: std::sync::Mutex<std::vec::Vec<(u64, usize)>> =
        std::sync::Mutex::new(std::vec::Vec::new());
    static BAR4: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    const BAR4_PHYS: u64 = 0xfebf_c000;

    // SAFETY: only mmio_phys_to_virt is used, and it returns addresses inside
    // a leaked, never-freed buffer as large as the BAR; nothing reads them.
    unsafe impl virtio_drivers::Hal for FakeHal {
        fn dma_alloc(
            _pages: usize,
            _direction: virtio_drivers::BufferDirection,
        ) -> (virtio_drivers::PhysAddr, core::ptr::NonNull<u8>) {
            unimplemented!("the transport allocates no DMA memory")
        }
        unsafe fn dma_dealloc(
            _paddr: virtio_drivers::PhysAddr,
            _vaddr: core::ptr::NonNull<u8>,
            _pages: usize,
        ) -> i32 {
            unimplemented!()
        }
        unsafe fn mmio_phys_to_virt(
            paddr: virtio_drivers::PhysAddr,
            size: usize,
        ) -> core::ptr::NonNull<u8> {
            REQUESTS.lock().unwrap().push((paddr, size));
            let base = *BAR4.get_or_init(|| {
                std::boxed::Box::leak(std::vec![0u64; 0x4000 / 8].into_boxed_slice()).as_mut_ptr()
                    as usize
            });
            assert!(paddr >= BAR4_PHYS && paddr + size as u64 <= BAR4_PHYS + 0x4000);
            core::ptr::NonNull::new((base as u64 + (paddr - BAR4_PHYS)) as *mut u8).unwrap()
        }
        unsafe fn share(
            _buffer: core::ptr::NonNull<[u8]>,
            _direction: virtio_drivers::BufferDirection,
        ) -> virtio_drivers::PhysAddr {
            unimplemented!()
        }
        unsafe fn unshare(
            _paddr: virtio_drivers::PhysAddr,
            _buffer: core::ptr::NonNull<[u8]>,
            _direction: virtio_drivers::BufferDirection,
        ) {
            unimplemented!()
        }
    }

    #[test]
    fn virtio_drivers_finds_the_virtio_structures_in_qemus_snapshot() {
        use virtio_drivers::transport::{pci::PciTransport, DeviceType, Transport};
        let shadow = ConfigShadow::new(qemu_snapshot(), [0x20, 0x1000, 0, 0, 0x4000, 0]).unwrap();
        assert_eq!(shadow.device_command(), 0x0107);
        let access = SnapshotAccess::new(NIC, shadow);
        let counter = access.counter();
        let mut root = PciRoot::new(access);
        let transport = PciTransport::new::<FakeHal, _>(&mut root, NIC).unwrap();
        assert_eq!(transport.device_type(), DeviceType::Network);
        // common, notify, ISR and device config: all in BAR4, 4 KiB apart.
        let mut asked = REQUESTS.lock().unwrap().clone();
        asked.sort();
        let offsets: std::vec::Vec<u64> = asked.iter().map(|(p, _)| p - BAR4_PHYS).collect();
        assert_eq!(offsets, [0, 0x1000, 0x2000, 0x3000]);
        let counts = counter.get();
        assert_eq!(counts.refused, 0, "{counts:?}");
        // Four structures, each sizing 64-bit BAR4 (four writes) with
        // decoding toggled off and on around it. (netdom's log shows 28 and
        // 18: it also sizes every BAR once with PciRoot::bars to map them.)
        assert_eq!(counts.bar, 16, "{counts:?}");
        assert_eq!(counts.decode, 8, "{counts:?}");
    }
}
