//! The board's errors: which step failed, and why.

use core::fmt;

use xcp_pci::Bdf;

/// A step of the board's multi-step work (the build, the NIC hand-over,
/// the lifecycle), named in errors and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `XEN_DOMCTL_createdomain`.
    CreateDomain,
    /// `XEN_DOMCTL_max_vcpus`.
    MaxVcpus,
    /// `XEN_DOMCTL_max_mem`.
    MaxMem,
    /// `XENMEM_populate_physmap`.
    PopulatePhysmap,
    /// The console's event channel (in the new domain).
    ConsolePort,
    /// The xenstore event channel (in the new domain).
    XenstorePort,
    /// `XEN_DOMCTL_getdomaininfo`.
    DomainInfo,
    /// Writing boot page `pfn` through a foreign mapping.
    WritePage {
        /// The guest frame.
        pfn: u64,
    },
    /// The grant table's first frame (for the grant seed).
    GrantTable,
    /// Writing the grant seed.
    GrantSeed,
    /// Writing shared_info.
    SharedInfo,
    /// `XEN_DOMCTL_hypercall_init`.
    HypercallInit,
    /// Pinning the top-level page table.
    PinL4,
    /// `XEN_DOMCTL_setvcpucontext`.
    VcpuContext,
    /// dom0's xenstore ring page (the xenstore domain's build).
    XenstoreRing,
    /// Granting dom0's xenstore ring to the xenstore domain.
    XenstoreGrant,
    /// dom0's xenstore event channel.
    XenstoreLink,
    /// Introducing the domain to xenstore.
    Introduce,
    /// Connecting to the domain's console.
    ConsoleConnect,
    /// Unpausing the domain.
    Unpause,
    /// Watching `@releaseDomain`.
    WatchLifecycle,
    /// Resetting the device and turning bus mastering on.
    PrepareDevice,
    /// The config-space snapshot page.
    SnapshotPage,
    /// Granting the snapshot.
    SnapshotGrant,
    /// A relay channel page.
    RelayPage,
    /// Granting a relay page.
    RelayGrant,
    /// The relay's event channel.
    RelayPort,
    /// `XEN_DOMCTL_assign_device`.
    AssignDevice,
    /// `XEN_DOMCTL_iomem_permission`.
    IomemPermission,
    /// `XEN_DOMCTL_ioport_permission`.
    IoportPermission,
    /// `PHYSDEVOP_prepare_msix`.
    PrepareMsix,
    /// `PHYSDEVOP_map_pirq` of MSI-X entry `entry`.
    MapPirq {
        /// The MSI-X entry.
        entry: u16,
    },
    /// Setting MSI-X enable.
    EnableMsix,
    /// `PHYSDEVOP_release_msix`.
    ReleaseMsix,
    /// Ending a grant.
    EndGrant,
    /// The virtio reset (the device's common configuration).
    VirtioReset,
    /// Setting the paging (HAP) memory pool.
    PagingPool,
    /// Streaming the kernel into guest memory.
    LoadKernel,
    /// The PVH plan (after the kernel is loaded).
    PvhPlan,
    /// `XENMEM_set_memory_map`.
    MemoryMap,
    /// `HVMOP_set_param` of `index`.
    HvmParam {
        /// `HVM_PARAM_*`.
        index: u32,
    },
    /// Reading (`XEN_DOMCTL_gethvmcontext`) or loading
    /// (`XEN_DOMCTL_sethvmcontext`) the boot vCPU's state.
    HvmContext,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CreateDomain => f.write_str("createdomain"),
            Step::MaxVcpus => f.write_str("max_vcpus"),
            Step::MaxMem => f.write_str("max_mem"),
            Step::PopulatePhysmap => f.write_str("populate_physmap"),
            Step::ConsolePort => f.write_str("console evtchn"),
            Step::XenstorePort => f.write_str("xenstore evtchn"),
            Step::DomainInfo => f.write_str("getdomaininfo"),
            Step::WritePage { pfn } => write!(f, "pfn {pfn}"),
            Step::GrantTable => f.write_str("grant table"),
            Step::GrantSeed => f.write_str("grant seed"),
            Step::SharedInfo => f.write_str("shared_info"),
            Step::HypercallInit => f.write_str("hypercall_init"),
            Step::PinL4 => f.write_str("pin L4"),
            Step::VcpuContext => f.write_str("setvcpucontext"),
            Step::XenstoreRing => f.write_str("ring frame"),
            Step::XenstoreGrant => f.write_str("grant dom0's ring"),
            Step::XenstoreLink => f.write_str("xenstore port"),
            Step::Introduce => f.write_str("xenstore introduce"),
            Step::ConsoleConnect => f.write_str("console connect"),
            Step::Unpause => f.write_str("unpause"),
            Step::WatchLifecycle => f.write_str("watch @releaseDomain"),
            Step::PrepareDevice => f.write_str("prepare the device"),
            Step::SnapshotPage => f.write_str("snapshot frame"),
            Step::SnapshotGrant => f.write_str("grant the snapshot"),
            Step::RelayPage => f.write_str("relay page"),
            Step::RelayGrant => f.write_str("grant a relay page"),
            Step::RelayPort => f.write_str("relay port"),
            Step::AssignDevice => f.write_str("assign the device"),
            Step::IomemPermission => f.write_str("iomem permission"),
            Step::IoportPermission => f.write_str("ioport permission"),
            Step::PrepareMsix => f.write_str("PHYSDEVOP_prepare_msix"),
            Step::MapPirq { entry } => write!(f, "map MSI-X entry {entry}"),
            Step::EnableMsix => f.write_str("enable MSI-X"),
            Step::ReleaseMsix => f.write_str("PHYSDEVOP_release_msix"),
            Step::EndGrant => f.write_str("end a grant"),
            Step::VirtioReset => f.write_str("virtio reset"),
            Step::PagingPool => f.write_str("paging mempool"),
            Step::LoadKernel => f.write_str("load the kernel"),
            Step::PvhPlan => f.write_str("PVH plan"),
            Step::MemoryMap => f.write_str("set_memory_map"),
            Step::HvmParam { index } => write!(f, "HVM param {index}"),
            Step::HvmContext => f.write_str("hvm context"),
        }
    }
}

/// What is wrong with the device dom0 hands over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// No virtio common configuration capability.
    NoCommonConfig,
    /// The common configuration is in BAR `bar`, not a memory BAR.
    NotMemoryBar {
        /// The BAR.
        bar: u8,
    },
    /// The common configuration lies outside its BAR.
    OutsideBar {
        /// The BAR.
        bar: u8,
        /// The structure's offset.
        offset: u64,
    },
    /// `device_status` is not 0 after the reset.
    NotReset {
        /// What it reads.
        status: u8,
    },
    /// The MSI-X table is in BAR `bar`, not a memory BAR.
    MsixTableNotMemory {
        /// The BAR.
        bar: u8,
    },
    /// MSI-X enable did not stick.
    MsixNotEnabled {
        /// Message Control after the write.
        control: u16,
    },
    /// Bus mastering or the device's status survived the reclaim.
    StillLive {
        /// The command register after the reclaim.
        command: u16,
        /// `device_status` after the reclaim.
        status: u8,
    },
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::NoCommonConfig => f.write_str("no virtio common configuration"),
            DeviceError::NotMemoryBar { bar } => {
                write!(f, "common configuration in BAR{bar}, not a memory BAR")
            }
            DeviceError::OutsideBar { bar, offset } => {
                write!(f, "common configuration at {offset:#x} outside BAR{bar}")
            }
            DeviceError::NotReset { status } => write!(f, "virtio status {status:#x} after reset"),
            DeviceError::MsixTableNotMemory { bar } => {
                write!(f, "MSI-X table in BAR{bar}, not a memory BAR")
            }
            DeviceError::MsixNotEnabled { control } => {
                write!(f, "MSI-X control {control:#06x} after enabling")
            }
            DeviceError::StillLive { command, status } => write!(
                f,
                "the device is still live after reclaim (command {command:#06x}, status {status:#x})"
            ),
        }
    }
}

/// Why the board could not do something. `E` is the platform's error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BoardError<E> {
    /// A platform operation failed at `step`.
    Platform {
        /// What was being done.
        step: Step,
        /// What the platform said.
        error: E,
    },
    /// The image is not a PV kernel the builder can lay out.
    Image(xcp_builder::Error),
    /// The kernel image could not be loaded (PVH): bad, too large, or it
    /// asked for memory outside the guest's RAM.
    Kernel(xcp_kimage::KimageError),
    /// The PVH plan refused, at `step`.
    Pvh {
        /// What was being done.
        step: Step,
        /// What the plan said.
        error: xcp_builder::PvhError,
    },
    /// The builder's plan failed at `step`.
    Plan {
        /// What was being done.
        step: Step,
        /// What the builder said.
        error: xcp_builder::Error,
    },
    /// The image config `config` names is not in the bundle.
    NoImage {
        /// Index of the config.
        config: usize,
    },
    /// No virtio-net device on bus 0.
    NoNic,
    /// No virtio-blk device on bus 0.
    NoDisk,
    /// Config `config` is not built with `passthrough = true`.
    NoPassthrough {
        /// Index of the config.
        config: usize,
    },
    /// The device `bdf` misbehaved.
    Device {
        /// The device.
        bdf: Bdf,
        /// How.
        error: DeviceError,
    },
    /// The xenstore domain did not take domain `domid`.
    NotIntroduced {
        /// The domain.
        domid: u16,
    },
    /// A PVH guest's low RAM cannot hold both its kernel and the xz
    /// dictionary lent from its top.
    NoRoomForDictionary {
        /// The dictionary, bytes.
        dictionary: u64,
        /// The guest's low RAM, bytes.
        low_ram: u64,
        /// Where the kernel wanted to write inside the dictionary (None:
        /// the dictionary alone fills low RAM).
        at: Option<u64>,
    },
}

impl<E> BoardError<E> {
    /// A platform error at `step`, for `map_err`.
    pub fn at(step: Step) -> impl FnOnce(E) -> Self {
        move |error| BoardError::Platform { step, error }
    }
}

impl<E: fmt::Display> fmt::Display for BoardError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoardError::Platform { step, error } => write!(f, "{step}: {error}"),
            BoardError::Image(e) => write!(f, "bad image: {e}"),
            BoardError::Kernel(e) => write!(f, "kernel: {e}"),
            BoardError::Pvh { step, error } => write!(f, "{step}: {error}"),
            BoardError::Plan { step, error } => write!(f, "{step}: {error}"),
            BoardError::NoImage { config } => write!(f, "config {config}: image not in the bundle"),
            BoardError::NoNic => f.write_str("no virtio-net device on bus 0"),
            BoardError::NoDisk => f.write_str("no virtio-blk device on bus 0"),
            BoardError::NoPassthrough { config } => write!(
                f,
                "config {config} needs passthrough = true to be given a device"
            ),
            BoardError::Device { bdf, error } => write!(f, "{bdf}: {error}"),
            BoardError::NotIntroduced { domid } => write!(f, "xenstore-dom refused domain {domid}"),
            BoardError::NoRoomForDictionary {
                dictionary,
                low_ram,
                at,
            } => {
                write!(
                    f,
                    "memory too small: the kernel's {} KiB xz dictionary is lent from the top of \
                     the VM's {} KiB of RAM",
                    dictionary >> 10,
                    low_ram >> 10
                )?;
                if let Some(at) = at {
                    write!(f, " and the kernel loads into it (at {at:#x})")?;
                }
                f.write_str(": give the VM more memory")
            }
        }
    }
}

/// A load's result as the board's: a sink refusal caused by a platform
/// error is that error.
pub(crate) fn kernel_result<E>(
    loaded: Result<xcp_kimage::Loaded, xcp_kimage::KimageError>,
    failed: Option<E>,
) -> Result<xcp_kimage::Loaded, BoardError<E>> {
    match (loaded, failed) {
        (Ok(l), _) => Ok(l),
        (Err(xcp_kimage::KimageError::SinkRefused(_)), Some(error)) => Err(BoardError::Platform {
            step: Step::LoadKernel,
            error,
        }),
        (Err(e), _) => Err(BoardError::Kernel(e)),
    }
}
