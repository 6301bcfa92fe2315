//! The QEMU launcher: the one place that knows how to boot the platform on
//! QEMU's q35 with the IOMMU that device passthrough needs (../xen-rig facts:
//! TCG, `-cpu max,-rdtscp,-pku`, isa-debug-exit for verdicts). Every launch
//! runs under `timeout`, so no QEMU outlives its budget.

use std::path::PathBuf;
use std::process::Command;

/// How Xen, dom0 and the bundle reach QEMU.
#[derive(Clone, Debug)]
pub enum Media {
    /// QEMU's own multiboot loader: `-kernel xen -initrd "dom0 cmdline,bundle"`.
    Direct {
        /// Uncompressed Xen (see `unpack_xen`).
        xen: PathBuf,
        /// Xen's command line.
        xen_cmdline: String,
        /// The dom0 kernel.
        dom0: PathBuf,
        /// dom0's command line.
        dom0_cmdline: String,
        /// The platform bundle.
        bundle: PathBuf,
    },
    /// A GRUB ISO from `make_iso`.
    Iso(PathBuf),
}

/// One QEMU run.
#[derive(Clone, Debug)]
pub struct Launch {
    /// What to boot.
    pub media: Media,
    /// Guest RAM.
    pub memory_mib: u32,
    /// Hard limit; `timeout` kills QEMU after it (and SIGKILLs 5 s later).
    pub timeout_secs: u64,
    /// Devices to pass to the service domains.
    pub devices: Devices,
}

/// The PCI devices QEMU gives the machine (dom0 hands them to the driver
/// domains through the IOMMU).
#[derive(Clone, Debug, Default)]
pub struct Devices {
    /// A virtio-net NIC at 00:05.0 on QEMU's user network; `Some(port)`
    /// forwards 127.0.0.1:port on the host to the guest's port 80.
    pub nic: Option<Option<u16>>,
    /// Control case only: the NIC without `iommu_platform=on`, so its DMA
    /// bypasses the emulated VT-d (QEMU writes guest memory directly).
    pub nic_bypasses_iommu: bool,
    /// A virtio-blk disk at 00:06.0 backed by this raw file (the storage
    /// domain's SR). QEMU's default write-back cache: a guest flush is an
    /// `fdatasync` of the file, so what stordom acknowledged survives QEMU.
    pub disk: Option<PathBuf>,
}

/// The NIC as QEMU's `-device` names it.
pub const NIC_DEVICE: &str =
    "virtio-net-pci,netdev=n1,bus=pcie.0,addr=0x5,disable-legacy=on,iommu_platform=on";
/// The disk as QEMU's `-device` names it (its DMA through the IOMMU, as the
/// NIC's).
pub const DISK_DEVICE: &str =
    "virtio-blk-pci,drive=d1,bus=pcie.0,addr=0x6,disable-legacy=on,iommu_platform=on";
/// The same NIC with its DMA past the IOMMU (the control case).
pub const NIC_DEVICE_BYPASSING_IOMMU: &str =
    "virtio-net-pci,netdev=n1,bus=pcie.0,addr=0x5,disable-legacy=on";

impl Devices {
    fn args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(forward) = self.nic {
            let mut netdev = String::from("user,id=n1");
            if let Some(port) = forward {
                netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{port}-:80"));
            }
            a.extend(["-netdev".to_string(), netdev]);
            // `iommu_platform=on`: the device offers VIRTIO_F_ACCESS_PLATFORM
            // and does its DMA through the emulated VT-d, where Xen confines
            // it to the owning domain's memory (without it QEMU's virtio
            // writes guest memory directly). QEMU refuses it on a legacy or
            // transitional device, hence `disable-legacy=on` (no I/O BAR).
            let device = if self.nic_bypasses_iommu {
                NIC_DEVICE_BYPASSING_IOMMU
            } else {
                NIC_DEVICE
            };
            a.extend(["-device".to_string(), device.to_string()]);
        }
        if let Some(file) = &self.disk {
            // QEMU splits -drive on commas: the path must not hold one.
            a.extend([
                "-drive".to_string(),
                format!(
                    "file={},format=raw,if=none,id=d1,cache=writeback,discard=unmap",
                    file.display()
                ),
                "-device".to_string(),
                DISK_DEVICE.to_string(),
            ]);
        }
        a
    }
}

/// Virtual size of the SR disk `cargo xtask run` makes (sparse: it takes
/// host space only for what stordom writes).
pub const SR_DISK_BYTES: u64 = 16 << 30;

/// Makes `path` a sparse file of `bytes` if it does not exist; an existing
/// file is kept as it is (it holds the platform's state). Returns whether
/// it was created.
pub fn sparse_disk(path: &std::path::Path, bytes: u64) -> std::io::Result<bool> {
    if path.to_string_lossy().contains(',') {
        return Err(std::io::Error::other(format!(
            "{}: QEMU cannot take a disk path with a comma",
            path.display()
        )));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(file) => {
            file.set_len(bytes)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

impl Launch {
    /// The full command: `timeout -k 5 <secs> qemu-system-x86_64 ...`.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.arg("-k").arg("5").arg(self.timeout_secs.to_string());
        cmd.arg("qemu-system-x86_64");
        cmd.args(["-machine", "q35", "-cpu", "max,-rdtscp,-pku"]);
        // One CPU for Xen. With two, Xen under QEMU's TCG on a loaded host
        // loses wake-ups across its CPUs: a domain blocked in SCHEDOP_poll
        // sleeps through its pending event channels and its own timers
        // (xenstore-dom's 250 ms timer stopped) until another CPU's timer
        // fires, 5 s later in the xenstore stress case, which failed 6 runs
        // of 6 with `-smp 2` and passed 6 of 6 with `-smp 1` under the same
        // load (`tdt=0`, `cpuidle=0`, `-cpu max,-monitor` and single-threaded
        // TCG did not help). Xen runs every domain's vCPUs on the one CPU.
        cmd.args([
            "-m",
            &self.memory_mib.to_string(),
            "-smp",
            "1",
            "-nodefaults",
        ]);
        cmd.args(["-display", "none", "-no-reboot"]);
        // The serial console on QEMU's stdin and stdout, no monitor: the
        // caller owns the terminal (`cargo xtask run` passes keys on and
        // handles Ctrl-A X itself).
        cmd.args(["-monitor", "none", "-serial", "stdio"]);
        cmd.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        cmd.args(["-device", "intel-iommu,intremap=on"]);
        cmd.args(self.devices.args());
        // Experiments on the rig (e.g. `-smp 2`): later options win.
        if let Ok(extra) = std::env::var("XCP_QEMU_EXTRA") {
            cmd.args(extra.split_whitespace());
        }
        match &self.media {
            Media::Direct {
                xen,
                xen_cmdline,
                dom0,
                dom0_cmdline,
                bundle,
            } => {
                cmd.arg("-kernel").arg(xen);
                cmd.arg("-append").arg(xen_cmdline);
                // QEMU splits -initrd on commas: dom0 with its command line,
                // then the bundle. Paths must not contain commas.
                let dom0_arg = if dom0_cmdline.is_empty() {
                    dom0.display().to_string()
                } else {
                    format!("{} {}", dom0.display(), dom0_cmdline)
                };
                cmd.arg("-initrd")
                    .arg(format!("{},{}", dom0_arg, bundle.display()));
            }
            Media::Iso(iso) => {
                cmd.arg("-cdrom").arg(iso).args(["-boot", "d"]);
            }
        }
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(l: &Launch) -> Vec<String> {
        l.command()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn direct_boot_is_bounded_and_passes_modules() {
        let l = Launch {
            media: Media::Direct {
                xen: "/t/xen".into(),
                xen_cmdline: "console=com1".into(),
                dom0: "/t/dom0".into(),
                dom0_cmdline: "test-exit".into(),
                bundle: "/t/bundle.cpio".into(),
            },
            memory_mib: 1024,
            timeout_secs: 60,
            devices: Devices::default(),
        };
        let a = args(&l);
        assert_eq!(l.command().get_program(), "timeout");
        assert_eq!(&a[..4], ["-k", "5", "60", "qemu-system-x86_64"]);
        let initrd = a.iter().position(|x| x == "-initrd").unwrap();
        assert_eq!(a[initrd + 1], "/t/dom0 test-exit,/t/bundle.cpio");
        assert!(a
            .windows(2)
            .any(|w| w == ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]));
        assert!(a.windows(2).any(|w| w == ["-serial", "stdio"]));
    }

    #[test]
    fn a_sparse_disk_is_made_once_and_then_kept() {
        let dir = std::env::temp_dir().join(format!("xcp-sparse-{}", std::process::id()));
        let path = dir.join("sr.img");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(sparse_disk(&path, 1 << 30).expect("created"));
        assert_eq!(std::fs::metadata(&path).expect("exists").len(), 1 << 30);
        std::fs::write(&path, b"state").expect("written");
        assert!(!sparse_disk(&path, 1 << 30).expect("kept"));
        assert_eq!(std::fs::read(&path).expect("read"), b"state");
        assert!(sparse_disk(&dir.join("a,b.img"), 1 << 20).is_err());
        std::fs::remove_dir_all(&dir).expect("cleaned");
    }

    #[test]
    fn iso_boot_uses_the_cdrom() {
        let l = Launch {
            media: Media::Iso("/t/x.iso".into()),
            memory_mib: 512,
            timeout_secs: 5,
            devices: Devices {
                nic: Some(Some(8080)),
                nic_bypasses_iommu: false,
                disk: Some("/t/sr.img".into()),
            },
        };
        let a = args(&l);
        assert!(a.windows(2).any(|w| w == ["-cdrom", "/t/x.iso"]));
        assert!(a.windows(2).any(|w| w == ["-serial", "stdio"]));
        assert!(a
            .windows(2)
            .any(|w| w == ["-netdev", "user,id=n1,hostfwd=tcp:127.0.0.1:8080-:80"]));
        assert!(a.windows(2).any(|w| w
            == [
                "-device",
                "virtio-net-pci,netdev=n1,bus=pcie.0,addr=0x5,disable-legacy=on,iommu_platform=on"
            ]));
        assert!(a.windows(2).any(|w| w
            == [
                "-drive",
                "file=/t/sr.img,format=raw,if=none,id=d1,cache=writeback,discard=unmap"
            ]));
        assert!(a.windows(2).any(|w| w == ["-device", DISK_DEVICE]));
    }
}
