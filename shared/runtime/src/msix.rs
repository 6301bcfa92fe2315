//! Routing a virtio device's queue interrupts to MSI-X entries: the writes
//! to the virtio common configuration structure that virtio-drivers 0.13
//! never makes (it leaves every vector at `NO_VECTOR`, so with MSI-X
//! enabled the device would signal nothing), over a small register trait
//! the driver domains implement with the mapped BAR (`assigned::bind_msix`)
//! and tests implement with a fake. netdom routes virtio-net's two queues,
//! stordom virtio-blk's one.
//!
//! Read first: virtio 1.2 §4.1.4.3 ("Common configuration structure
//! layout") and §4.1.5.1.2 ("Virtqueue Interrupts From The Device"): "the
//! driver MUST read back the vector ... if the device could not allocate
//! it, NO_VECTOR is returned".

/// `msix_config` (le16): the configuration-change vector.
pub const MSIX_CONFIG: u64 = 0x10;
/// `queue_select` (le16).
pub const QUEUE_SELECT: u64 = 0x16;
/// `queue_msix_vector` (le16) of the selected queue.
pub const QUEUE_MSIX_VECTOR: u64 = 0x1a;
/// "No vector": the device does not interrupt for this event.
pub const NO_VECTOR: u16 = 0xffff;
/// Most pirqs a driver domain takes (`pci-pirqs=`).
pub const MAX_PIRQS: usize = 8;

/// 16-bit registers of the common configuration structure, by offset.
pub trait CommonConfig {
    /// Reads the register at `offset`.
    fn read16(&mut self, offset: u64) -> u16;
    /// Writes the register at `offset`.
    fn write16(&mut self, offset: u64, value: u16);
}

/// Why routing failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// The device read back `NO_VECTOR` (or another entry) for this queue.
    Refused {
        /// The queue.
        queue: u16,
        /// The entry asked for.
        entry: u16,
        /// What the device read back.
        got: u16,
    },
}

/// Points each queue of `routes` at its MSI-X entry and the configuration
/// vector at none; checks every read-back.
pub fn route(regs: &mut impl CommonConfig, routes: &[(u16, u16)]) -> Result<(), RouteError> {
    regs.write16(MSIX_CONFIG, NO_VECTOR);
    for &(queue, entry) in routes {
        regs.write16(QUEUE_SELECT, queue);
        regs.write16(QUEUE_MSIX_VECTOR, entry);
        let got = regs.read16(QUEUE_MSIX_VECTOR);
        if got != entry {
            return Err(RouteError::Refused { queue, entry, got });
        }
    }
    Ok(())
}

/// The pirqs dom0 mapped for a driver domain (`pci-pirqs=55,54`), in
/// MSI-X entry order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pirqs {
    numbers: [u32; MAX_PIRQS],
    len: usize,
}

impl Pirqs {
    /// `55,54` → pirqs 55 (entry 0) and 54 (entry 1); 1..=MAX_PIRQS of them.
    pub fn parse(text: &str) -> Option<Pirqs> {
        let mut pirqs = Pirqs {
            numbers: [0; MAX_PIRQS],
            len: 0,
        };
        for part in text.split(',') {
            if pirqs.len == MAX_PIRQS {
                return None;
            }
            pirqs.numbers[pirqs.len] = part.parse().ok()?;
            pirqs.len += 1;
        }
        Some(pirqs)
    }

    /// The pirqs, entry 0 first.
    pub fn as_slice(&self) -> &[u32] {
        &self.numbers[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::vec;
    use alloc::vec::Vec;

    /// A common configuration structure with `entries` MSI-X entries: a
    /// vector beyond them reads back as NO_VECTOR, as QEMU does.
    struct Fake {
        entries: u16,
        select: u16,
        vectors: BTreeMap<u16, u16>,
        config_vector: u16,
        writes: Vec<(u64, u16)>,
    }

    impl Fake {
        fn new(entries: u16) -> Fake {
            Fake {
                entries,
                select: 0,
                vectors: BTreeMap::new(),
                config_vector: 0,
                writes: Vec::new(),
            }
        }
    }

    impl CommonConfig for Fake {
        fn read16(&mut self, offset: u64) -> u16 {
            match offset {
                QUEUE_MSIX_VECTOR => *self.vectors.get(&self.select).unwrap_or(&NO_VECTOR),
                MSIX_CONFIG => self.config_vector,
                QUEUE_SELECT => self.select,
                _ => panic!("read of {offset:#x}"),
            }
        }

        fn write16(&mut self, offset: u64, value: u16) {
            self.writes.push((offset, value));
            let accept = |v: u16| if v < self.entries { v } else { NO_VECTOR };
            match offset {
                QUEUE_SELECT => self.select = value,
                QUEUE_MSIX_VECTOR => {
                    let v = accept(value);
                    self.vectors.insert(self.select, v);
                }
                MSIX_CONFIG => self.config_vector = accept(value),
                _ => panic!("write of {offset:#x}"),
            }
        }
    }

    #[test]
    fn routes_each_queue_to_its_entry() {
        let mut fake = Fake::new(4);
        assert_eq!(route(&mut fake, &[(0, 0), (1, 1)]), Ok(()));
        assert_eq!(fake.vectors.get(&0), Some(&0));
        assert_eq!(fake.vectors.get(&1), Some(&1));
        assert_eq!(fake.config_vector, NO_VECTOR);
        assert_eq!(
            fake.writes,
            [
                (MSIX_CONFIG, NO_VECTOR),
                (QUEUE_SELECT, 0),
                (QUEUE_MSIX_VECTOR, 0),
                (QUEUE_SELECT, 1),
                (QUEUE_MSIX_VECTOR, 1),
            ]
        );
    }

    #[test]
    fn one_entry_is_shared() {
        let mut fake = Fake::new(1);
        assert_eq!(route(&mut fake, &[(0, 0), (1, 0)]), Ok(()));
        assert_eq!(fake.vectors.get(&1), Some(&0));
    }

    #[test]
    fn a_refused_vector_is_reported() {
        let mut fake = Fake::new(1);
        assert_eq!(
            route(&mut fake, &[(0, 0), (1, 1)]),
            Err(RouteError::Refused {
                queue: 1,
                entry: 1,
                got: NO_VECTOR
            })
        );
    }

    #[test]
    fn parses_pirq_lists() {
        assert_eq!(
            Pirqs::parse("55,54").map(|p| p.as_slice().to_vec()),
            Some(vec![55, 54])
        );
        assert_eq!(
            Pirqs::parse("7").map(|p| p.as_slice().to_vec()),
            Some(vec![7])
        );
        for bad in ["", "55,", ",55", "x", "-1", "1,2,3,4,5,6,7,8,9"] {
            assert_eq!(Pirqs::parse(bad), None, "{bad:?}");
        }
        assert!(Pirqs::parse("1,2,3,4,5,6,7,8").is_some());
    }
}
