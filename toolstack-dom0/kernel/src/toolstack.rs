//! The XenAPI toolstack inside dom0: the `xenapi` engine over the real
//! hypervisor (the domain builder), taking client byte streams from a relay
//! domain over an inter-domain channel (`xcp-relay` messages) and sending
//! the replies back. dom0 never sees network traffic, only these streams.
//!
//! The database's log lives in stordom's SR when the machine has a disk
//! (`crate::storage`): every acknowledged call is on the disk, and a
//! platform reboot replays it. Without a disk no log is kept
//! (`wal::Volatile`: a log in dom0's memory would survive nothing dom0 does
//! not, and cost up to twice the database again; xenapi `budget.rs`).

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;

use xcp_channel::{Channel, SendError};
use xcp_dom0_board::Platform as _;
use xcp_relay::{FromToolstack, RelayStats, ToToolstack, VifCounters};
use xcp_runtime::paging::Frame;
use xenapi::auth::PasswordHash;
use xenapi::engine::{Config, Engine};
use xenapi::hypervisor::{
    BuildStep, DomainSpec, Hypervisor, HypervisorError, ShutdownReason, VifDevice,
};
use xenapi::vbd::{VbdDevice, VbdKind, VbdMode};

/// What dom0 writes for `vbd` of `guest`, served by `backend`.
fn vbd_info(
    guest: u16,
    backend: u16,
    vbd: &VbdDevice,
    pvh: bool,
) -> xcp_dom0_board::vbd_tree::VbdInfo<'_> {
    xcp_dom0_board::vbd_tree::VbdInfo {
        guest,
        backend,
        devid: vbd.devid,
        dev: &vbd.dev,
        vdi: vbd.vdi.as_deref(),
        writable: vbd.mode == VbdMode::Rw,
        cdrom: vbd.kind == VbdKind::Cdrom,
        bootable: vbd.bootable,
        hvm_frontend: pvh,
    }
}

/// What dom0 writes for `vif` of `guest`, served by `backend`.
fn vif_info(
    guest: u16,
    backend: u16,
    devid: u32,
    vif: &VifDevice,
) -> xcp_dom0_board::vif_tree::VifInfo<'_> {
    xcp_dom0_board::vif_tree::VifInfo {
        guest,
        backend,
        devid,
        mac: vif.mac,
        mtu: vif.mtu,
        locking: &vif.locking,
        ipv4_allowed: &vif.ipv4_allowed,
        ipv6_allowed: &vif.ipv6_allowed,
    }
}
use xenapi::lifecycle::{AfterStop, StopReason};
use xenapi::metrics::ManagementLink;
use xenapi::relayed::Relayed;
use xenapi::rng::Entropy;
use xenapi::value::Instant;

use crate::storage::Db;

use crate::relay::{ConsoleLink, Lines};
use crate::xen::Xen;
use crate::xs::XsLink;

/// Running VMs whose console dom0 relays (dom0's budget, xenapi
/// `budget.rs`: each keeps a 64 KiB history).
pub const MAX_VM_CONSOLES: usize = xenapi::budget::VM_CONSOLES;

/// Most reply bytes queued for a relay that is not reading (dom0's budget,
/// xenapi `budget.rs`): beyond it dom0 stops taking that relay's requests
/// until it reads. One reply may overshoot it; that reply is counted in
/// the budget's call in flight.
const MAX_BACKLOG: usize = xenapi::budget::BACKLOG_BYTES;

// dom0's budget (xenapi `budget.rs`) counts a console history per platform
// domain.
const _: () = assert!(xcp_bundle::config::MAX_DOMAINS <= xenapi::budget::CONSOLES);
const _: () = assert!(xcp_console::HISTORY_BYTES <= xenapi::budget::CONSOLE_HISTORY_BYTES);

/// Bytes a queued message holds.
fn message_bytes(msg: &FromToolstack) -> usize {
    match msg {
        FromToolstack::Data { bytes, .. } => bytes.len() + 32,
        _ => 32,
    }
}

/// Hardware randomness for salts, session references and UUIDs.
pub struct XenEntropy;

impl Entropy for XenEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        xcp_runtime::entropy::fill(buf);
    }
}

/// Where `PV_kernel` / `PV_ramdisk` name the bundle's guest files, as XCP's
/// dom0 keeps guest kernels in `/boot/guest` (`cargo xtask run --guest
/// FILE` packs FILE as bundle entry `boot/guest/<name>`).
pub const GUEST_DIR: &str = "/boot/guest/";

/// The toolstack's images from the bundle, by the name a VM gives them:
/// each guest file as `/boot/guest/<name>`, each of the bundle's own
/// `.elf` images by its bare name (as before guest files existed), and
/// the bootloaders by their entry names (`xcp_bundle::PVGRUB_PVH`, ...).
pub fn vm_images(bundle: &xcp_bundle::Bundle<'static>) -> BTreeMap<String, &'static [u8]> {
    let mut images = BTreeMap::new();
    for entry in bundle.entries() {
        let bundled = xcp_bundle::guest_file_name(entry.name)
            .map(|name| alloc::format!("{GUEST_DIR}{name}"))
            .or_else(|| {
                let own = !entry.name.contains('/') && entry.name.ends_with(".elf");
                let bootloader = xcp_bundle::BOOTLOADERS.contains(&entry.name);
                (own || bootloader).then(|| String::from(entry.name))
            });
        if let Some(name) = bundled {
            images.insert(name, entry.data);
        }
    }
    images
}

/// VM power operations on real Xen: VMs boot PV kernels that the bundle
/// carries, named by the VM's `PV_kernel` (and `PV_ramdisk`). While a
/// xenstore domain runs, each VM's domain gets a xenstore ring for it, its
/// tree (`xcp_dom0_board::guest_tree`) and an introduction; its destroy
/// releases it and removes the tree.
pub struct XenHypervisor {
    images: BTreeMap<String, &'static [u8]>,
    /// The xenstore domain and dom0's connection to it, lent by the board
    /// before each engine call ([`Toolstack::lend_xenstore`]).
    xenstore: Option<(u16, XsLink)>,
    /// The uuid of each VM domain introduced to xenstore, by domid.
    introduced: BTreeMap<u16, String>,
    /// The console of each VM domain dom0 relays, by domid (at most
    /// [`MAX_VM_CONSOLES`]).
    consoles: BTreeMap<u16, ConsoleLink>,
    /// netdom's domid while it runs (the backend of guests' VIFs), lent
    /// by the board with the xenstore link.
    netdom: Option<u16>,
    /// The VIFs whose xenstore directories dom0 wrote: (guest, device)
    /// to the backend domain they name and what was written (written
    /// again for a rebuilt netdom).
    vifs: BTreeMap<(u16, u32), (u16, VifDevice)>,
    /// Event-loop watches to apply (port, watch or unwatch), taken by
    /// [`Toolstack::take_watches`] after each engine call.
    watches: alloc::vec::Vec<(u32, bool)>,
    /// The domains this dom0 built for VMs (since it booted): the only
    /// ones a VM's destroy may take down. A VM the database remembers
    /// running from before a platform reboot names a domid that may be
    /// any other domain's now.
    built: alloc::collections::BTreeSet<u16>,
    /// Those of [`Self::built`] that are PVH (HVM-type) domains.
    pvh: alloc::collections::BTreeSet<u16>,
    /// The PVH build carried on a step at a time, if one is.
    stepping: Option<Stepping>,
    /// stordom's SR, when the database lives there (the one SR).
    sr: Option<crate::storage::StordomSr>,
    /// stordom's domid while it runs (the backend of guests' VBDs), lent
    /// by the board with the xenstore link.
    stordom: Option<u16>,
    /// The VBDs whose xenstore directories dom0 wrote: (guest, device) to
    /// the backend domain they name and what was written (written again
    /// for a rebuilt stordom).
    vbds: BTreeMap<(u16, u32), (u16, VbdDevice)>,
    xen: Xen,
}

fn xen_err(what: &str, e: impl core::fmt::Display) -> HypervisorError {
    HypervisorError(alloc::format!("{what}: {e}"))
}

fn domid16(domid: u32) -> Result<u16, HypervisorError> {
    u16::try_from(domid).map_err(|_| HypervisorError(alloc::format!("bad domid {domid}")))
}

impl XenHypervisor {
    /// The domid of `domid`'s tree and the xenstore link to read it, for
    /// what a VM's guest agent wrote: only domains this dom0 introduced as
    /// VMs (never a service domain's).
    fn guest_tree_link(&mut self, domid: u32) -> Option<(u16, &mut XsLink)> {
        let d = u16::try_from(domid).ok()?;
        if !self.introduced.contains_key(&d) {
            return None;
        }
        let (_, xs) = self.xenstore.as_mut()?;
        Some((d, xs))
    }

    fn image(&self, what: &str, name: &str) -> Result<&'static [u8], HypervisorError> {
        self.images.get(name).copied().ok_or_else(|| {
            HypervisorError(alloc::format!(
                "{what} {name:?} is not in the platform bundle (guest files are {GUEST_DIR}<name>)"
            ))
        })
    }

    /// Relays the console of the new VM domain `built` (called `name`),
    /// if fewer than [`MAX_VM_CONSOLES`] are relayed. The VM runs either
    /// way: a console dom0 cannot relay is only not seen.
    fn connect_console(&mut self, name: &str, built: &xcp_dom0_board::build::Built) {
        if self.consoles.len() >= MAX_VM_CONSOLES {
            log::warn!(
                "xenapi: VM {name} (domid {}): console not relayed ({MAX_VM_CONSOLES} VM consoles are)",
                built.domid
            );
            return;
        }
        match ConsoleLink::connect_to(
            name,
            built.domid,
            built.console_mfn,
            built.console_port,
            Lines::Debug,
        ) {
            Ok(link) => {
                self.watches.push((link.port, true));
                self.consoles.insert(built.domid, link);
            }
            Err(e) => log::warn!(
                "xenapi: VM {name} (domid {}): console not relayed: {e}",
                built.domid
            ),
        }
    }

    /// Drains, unwatches and closes the console of VM domain `domid`.
    fn close_console(&mut self, domid: u16) {
        if let Some(mut link) = self.consoles.remove(&domid) {
            link.drain();
            self.watches.push((link.port, false));
            link.close();
        }
    }

    /// Writes the tree of `spec`'s new domain and introduces it; on failure
    /// removes what was written.
    ///
    /// `built`'s frames are what the guest's tree names as ring-refs: mfns
    /// for a PV domain, gfns for a PVH one. `vcpus`: (the domain's vCPUs,
    /// how many of them are online).
    fn introduce(
        xs: &mut XsLink,
        spec: &DomainSpec,
        built: &xcp_dom0_board::build::Built,
        mib: u32,
        vcpus: (u32, u32),
    ) -> Result<(), HypervisorError> {
        use xcp_dom0_board::guest_tree::{nodes, GuestInfo};
        let guest = GuestInfo {
            domid: built.domid,
            uuid: &spec.uuid,
            name: &spec.name,
            memory_kib: u64::from(mib) * 1024,
            vcpus: vcpus.0,
            vcpus_online: vcpus.1,
            store_mfn: built.store_mfn,
            store_port: built.store_port,
            console_mfn: built.console_mfn,
            console_port: built.console_port,
        };
        let result = match xs.introduce_vm(
            &nodes(&guest),
            built.domid,
            built.store_mfn,
            built.store_port,
        ) {
            Ok(true) => Ok(()),
            Ok(false) => Err(HypervisorError(String::from(
                "xenstore did not take the domain",
            ))),
            Err(e) => Err(xen_err("xenstore", e)),
        };
        if result.is_err() {
            let _ = xs.forget_vm(built.domid, &spec.uuid);
        }
        result
    }
}

impl XenHypervisor {
    /// Builds `spec` as a PVH domain (paused), introduces it to the
    /// xenstore domain (if one runs) and relays its console, as for PV.
    ///
    /// The kernel is an ELF vmlinux or a bzImage (xz, gzip, zstd). An xz
    /// kernel's dictionary (Debian's asks 32 MiB, which dom0's heap —
    /// about 44.5 MiB, 42.1 MiB of it budgeted by xenapi `budget.rs` —
    /// does not have) is lent from the top of the guest's own low RAM,
    /// mapped into dom0 only for the load (`Dictionary::GuestRam`), so
    /// dom0's heap does not grow with the kernel. The VM then needs RAM
    /// for the kernel below that dictionary; with too little the build
    /// fails cleanly and the VM stays Halted.
    fn build_pvh(
        &mut self,
        spec: &DomainSpec,
        image: &[u8],
        ramdisk: &[u8],
        handle: [u8; 16],
        mib: u32,
    ) -> Result<u32, HypervisorError> {
        let pvh = self.pvh_spec(spec, image, ramdisk, handle, mib);
        // dom0's own memory around the build, for the log: the kernel's
        // dictionary must not show in the heap.
        let before = xcp_runtime::usage::memory_use();
        let started = self.xen.now_ns();
        let built = xcp_dom0_board::pvh::build_pvh(&mut self.xen, pvh);
        self.pvh_built(spec, built, mib, started, 1, before)
    }

    /// What the PVH build of `spec` is asked for.
    fn pvh_spec<'a>(
        &self,
        spec: &'a DomainSpec,
        image: &'a [u8],
        ramdisk: &'a [u8],
        handle: [u8; 16],
        mib: u32,
    ) -> xcp_dom0_board::pvh::PvhSpec<'a> {
        xcp_dom0_board::pvh::PvhSpec {
            kernel: image,
            initrd: ramdisk,
            memory_mib: mib,
            vcpus: spec.vcpus,
            cmdline: &spec.cmdline,
            handle,
            xenstore: self.xenstore.as_ref().map(|(domid, _)| *domid),
            dictionary: xcp_dom0_board::pvh::Dictionary::GuestRam,
        }
    }

    /// The end of `spec`'s PVH build (begun at `started` ns, in `steps`
    /// steps, dom0's memory `before` it): logged, introduced to xenstore,
    /// its console relayed. Its domid.
    fn pvh_built(
        &mut self,
        spec: &DomainSpec,
        built: Result<
            xcp_dom0_board::pvh::PvhBuilt,
            xcp_dom0_board::BoardError<crate::xen::XenError>,
        >,
        mib: u32,
        started: u64,
        steps: u32,
        before: xcp_runtime::usage::MemoryUse,
    ) -> Result<u32, HypervisorError> {
        let took_ms = self.xen.now_ns().saturating_sub(started) / 1_000_000;
        let after = xcp_runtime::usage::memory_use();
        log::info!(
            "xenapi: PVH build of {} in {took_ms} ms ({steps} steps): dom0 heap in use {} -> {} bytes (peak {} -> {}), frames in use {} -> {} (peak {})",
            spec.name,
            before.heap_in_use,
            after.heap_in_use,
            before.heap_peak,
            after.heap_peak,
            before.frames_in_use,
            after.frames_in_use,
            after.frames_peak
        );
        let pvh = built.map_err(|e| HypervisorError(alloc::format!("{}: {e}", spec.name)))?;
        // The rings by gfn: what the guest's tree and the relay name.
        let built = xcp_dom0_board::build::Built {
            domid: pvh.domid,
            console_mfn: pvh.console_gfn,
            console_port: pvh.console_port,
            store_mfn: pvh.store_gfn,
            store_port: pvh.store_port.unwrap_or(0),
        };
        // A PVH guest's vCPUs are its MADT's: all online.
        self.finish_build(spec, &built, mib, (spec.vcpus, spec.vcpus))?;
        log::info!(
            "xenapi: built VM {} as PVH domid {} (entry {:#x})",
            spec.name,
            built.domid,
            pvh.entry
        );
        self.built.insert(built.domid);
        self.pvh.insert(built.domid);
        Ok(u32::from(built.domid))
    }

    /// Introduces new domain `built` to xenstore (if a xenstore domain
    /// runs) and relays its console; on failure destroys it. `vcpus` as
    /// for [`Self::introduce`].
    fn finish_build(
        &mut self,
        spec: &DomainSpec,
        built: &xcp_dom0_board::build::Built,
        mib: u32,
        vcpus: (u32, u32),
    ) -> Result<(), HypervisorError> {
        if let Some((_, xs)) = self.xenstore.as_mut() {
            if let Err(e) = Self::introduce(xs, spec, built, mib, vcpus) {
                if let Err(d) = self.xen.destroy_domain(built.domid) {
                    log::warn!("xenapi: destroy domid {}: {d}", built.domid);
                }
                return Err(HypervisorError(alloc::format!("{}: {}", spec.name, e.0)));
            }
            self.introduced.insert(built.domid, spec.uuid.clone());
        }
        self.connect_console(&spec.name, built);
        Ok(())
    }
}

impl XenHypervisor {
    /// See [`Toolstack::netdom_rebuilt`].
    fn netdom_rebuilt(&mut self, netdom: u16) -> usize {
        use xcp_dom0_board::vif_tree;
        let Some((_, xs)) = self.xenstore.as_mut() else {
            return 0;
        };
        let mut store = xs.store();
        let mut done = 0;
        for (&(guest, devid), (backend, vif)) in self.vifs.iter_mut() {
            let info = vif_info(guest, netdom, devid, vif);
            match vif_tree::reattach(&mut *store, &info) {
                Ok(true) => {
                    log::info!(
                        "xenapi: vif {devid} of domid {guest} handed to the rebuilt netdom (domid {netdom}, was {backend})"
                    );
                    *backend = netdom;
                    done += 1;
                }
                Ok(false) => {}
                Err(e) => log::warn!("xenapi: vif {devid} of domid {guest}: {e:?}"),
            }
        }
        done
    }

    /// See [`Toolstack::stordom_rebuilt`]: every VBD dom0 handed the old
    /// stordom gets its backend directory again.
    fn vbds_rebuilt(&mut self, stordom: u16) -> usize {
        use xcp_dom0_board::vbd_tree;
        let Some((_, xs)) = self.xenstore.as_mut() else {
            return 0;
        };
        let mut store = xs.store();
        let mut done = 0;
        for (&(guest, devid), (backend, vbd)) in self.vbds.iter_mut() {
            let pvh = self.pvh.contains(&guest);
            match vbd_tree::reattach(&mut *store, &vbd_info(guest, stordom, vbd, pvh)) {
                Ok(true) => {
                    log::info!(
                        "xenapi: vbd {devid} of domid {guest} handed to the rebuilt stordom (domid {stordom}, was {backend})"
                    );
                    *backend = stordom;
                    done += 1;
                }
                Ok(false) => {}
                Err(e) => log::warn!("xenapi: vbd {devid} of domid {guest}: {e:?}"),
            }
        }
        done
    }
}

/// What a VM's domain is built from.
struct BootImages {
    pvh: bool,
    image: &'static [u8],
    ramdisk: &'static [u8],
    handle: [u8; 16],
    mib: u32,
}

/// A PVH build carried on a step per call of `build_step`.
struct Stepping {
    /// The VM's uuid.
    uuid: String,
    /// The spec and images the build began with: its end is built from
    /// them whatever the VM's record says by then.
    spec: DomainSpec,
    boot: BootImages,
    build: xcp_dom0_board::pvh::PvhBuild,
    started: u64,
    steps: u32,
    before: xcp_runtime::usage::MemoryUse,
}

impl XenHypervisor {
    /// Builds `spec`'s domain at once from `boot`.
    fn build_from(&mut self, spec: &DomainSpec, boot: BootImages) -> Result<u32, HypervisorError> {
        let (image, ramdisk, handle, mib) = (boot.image, boot.ramdisk, boot.handle, boot.mib);
        if boot.pvh {
            return self.build_pvh(spec, image, ramdisk, handle, mib);
        }
        let role = xcp_dom0_board::build::DomainRole {
            server: self.xenstore.as_ref().map(|(domid, _)| *domid),
            handle,
            vcpus: spec.vcpus_max,
            ..Default::default()
        };
        let built =
            xcp_dom0_board::build::build(&mut self.xen, image, ramdisk, mib, role, &spec.cmdline)
                .map_err(|e| HypervisorError(alloc::format!("{}: {e}", spec.name)))?;
        // VCPUs_max vCPUs, VCPUs_at_startup of them online.
        self.finish_build(spec, &built, mib, (spec.vcpus_max, spec.vcpus))?;
        log::info!("xenapi: built VM {} as domid {}", spec.name, built.domid);
        self.built.insert(built.domid);
        Ok(u32::from(built.domid))
    }

    /// The domain type, kernel and ramdisk (or GRUB), handle and memory
    /// of `spec`'s domain.
    fn boot_images(&self, spec: &DomainSpec) -> Result<BootImages, HypervisorError> {
        let pvh = match spec.domain_type.as_str() {
            "pvh" => true,
            "pv" | "unspecified" | "" => false,
            other => {
                return Err(HypervisorError(alloc::format!(
                    "{}: domain_type {other:?} is not supported (pv or pvh)",
                    spec.name
                )))
            }
        };
        // As xapi: a bootloader, when named, boots the VM (its kernel comes
        // from the guest's own disk, never through dom0); else PV_kernel.
        let (image, ramdisk) = match spec.bootloader.as_str() {
            "" => {
                let ramdisk = match spec.ramdisk.as_str() {
                    "" => &[][..],
                    name => self.image("PV_ramdisk", name)?,
                };
                (self.image("PV_kernel", &spec.kernel)?, ramdisk)
            }
            "pygrub" | "pvgrub" => {
                let grub = if pvh {
                    xcp_bundle::PVGRUB_PVH
                } else {
                    xcp_bundle::PVGRUB_PV
                };
                log::info!("xenapi: VM {} boots GRUB from its disk", spec.name);
                (self.image("PV_bootloader", grub)?, &[][..])
            }
            other => {
                return Err(HypervisorError(alloc::format!(
                    "{}: PV_bootloader {other:?} is not supported (\"pygrub\", or empty with PV_kernel)",
                    spec.name
                )))
            }
        };
        let handle = xcp_dom0_board::guest_tree::handle_of(&spec.uuid)
            .ok_or_else(|| HypervisorError(alloc::format!("bad VM uuid {:?}", spec.uuid)))?;
        let mib = u32::try_from(spec.memory.div_ceil(1024 * 1024))
            .map_err(|_| HypervisorError(String::from("memory too large")))?
            .max(1);
        Ok(BootImages {
            pvh,
            image,
            ramdisk,
            handle,
            mib,
        })
    }
}

impl Hypervisor for XenHypervisor {
    /// A PVH domain is built a step per call (`PvhBuild`: its low RAM 16
    /// MiB a step, then the kernel and the rest), so dom0's loop serves
    /// other calls between steps; a PV domain is built at once (its
    /// builder has no steps yet).
    fn build_step(&mut self, spec: &DomainSpec) -> Result<BuildStep, HypervisorError> {
        let Some(mut st) = self.stepping.take() else {
            log::info!("xenapi: starting VM {}", spec.name);
            let boot = self.boot_images(spec)?;
            if !boot.pvh {
                return self.build_from(spec, boot).map(BuildStep::Built);
            }
            let before = xcp_runtime::usage::memory_use();
            let started = self.xen.now_ns();
            let pvh = self.pvh_spec(spec, boot.image, boot.ramdisk, boot.handle, boot.mib);
            let build = xcp_dom0_board::pvh::PvhBuild::create(&mut self.xen, &pvh)
                .map_err(|e| HypervisorError(alloc::format!("{}: {e}", spec.name)))?;
            self.stepping = Some(Stepping {
                uuid: spec.uuid.clone(),
                spec: spec.clone(),
                boot,
                build,
                started,
                steps: 1,
                before,
            });
            return Ok(BuildStep::Pending);
        };
        if st.uuid != spec.uuid {
            let e = alloc::format!("{}: the build of VM {} is in progress", spec.name, st.uuid);
            self.stepping = Some(st);
            return Err(HypervisorError(e));
        }
        st.steps += 1;
        match st.build.step(&mut self.xen) {
            Ok(false) => {
                self.stepping = Some(st);
                Ok(BuildStep::Pending)
            }
            Ok(true) => {
                let Stepping {
                    spec,
                    boot,
                    build,
                    started,
                    steps,
                    before,
                    ..
                } = st;
                let pvh = self.pvh_spec(&spec, boot.image, boot.ramdisk, boot.handle, boot.mib);
                let built = build.finish(&mut self.xen, pvh);
                self.pvh_built(&spec, built, boot.mib, started, steps, before)
                    .map(BuildStep::Built)
            }
            Err(e) => {
                st.build.abort(&mut self.xen);
                Err(HypervisorError(alloc::format!("{}: {e}", spec.name)))
            }
        }
    }

    fn build_abort(&mut self, uuid: &str) {
        if self.stepping.as_ref().is_some_and(|st| st.uuid == uuid) {
            if let Some(st) = self.stepping.take() {
                log::warn!(
                    "xenapi: the build of VM {uuid} was given up after {} steps: domid {} destroyed",
                    st.steps,
                    st.build.domid()
                );
                st.build.abort(&mut self.xen);
            }
        }
    }

    fn build(&mut self, spec: &DomainSpec) -> Result<u32, HypervisorError> {
        log::info!("xenapi: starting VM {}", spec.name);
        let boot = self.boot_images(spec)?;
        self.build_from(spec, boot)
    }

    fn set_cpu_share(&mut self, domid: u32, weight: u16, cap: u16) -> Result<(), HypervisorError> {
        use xen_sys::domctl_payloads::{XEN_SCHEDULER_CREDIT, XEN_SCHEDULER_CREDIT2};
        let d = domid16(domid)?;
        // Only the credit schedulers have weights: under another (sched=
        // on Xen's command line) a VM runs as that scheduler runs it.
        match self.xen.sched_id() {
            Ok(XEN_SCHEDULER_CREDIT | XEN_SCHEDULER_CREDIT2) => {}
            Ok(other) => {
                log::warn!("sched: domid {d}: scheduler {other} has no weight, left as is");
                return Ok(());
            }
            Err(e) => return Err(xen_err("sched_id", e)),
        }
        self.xen
            .set_cpu_share(d, xcp_dom0_board::CpuShare { weight, cap })
            .map_err(|e| xen_err("scheduler_op putinfo", e))?;
        // Xen's own values, read back, on the serial line.
        let got = self
            .xen
            .cpu_share(d)
            .map_err(|e| xen_err("scheduler_op getinfo", e))?;
        log::info!("sched: domid {d} weight {} cap {}", got.weight, got.cap);
        Ok(())
    }

    fn unpause(&mut self, domid: u32) -> Result<(), HypervisorError> {
        self.xen
            .unpause_domain(domid16(domid)?)
            .map_err(|e| xen_err("unpause", e))
    }

    fn pause(&mut self, domid: u32) -> Result<(), HypervisorError> {
        self.xen
            .pause_domain(domid16(domid)?)
            .map_err(|e| xen_err("pause", e))
    }

    fn shutdown(&mut self, domid: u32, reason: ShutdownReason) -> Result<(), HypervisorError> {
        let code = match reason {
            ShutdownReason::Poweroff => xen_sys::sched::SHUTDOWN_POWEROFF,
            ShutdownReason::Reboot => xen_sys::sched::SHUTDOWN_REBOOT,
        };
        self.xen
            .remote_shutdown(domid16(domid)?, code)
            .map_err(|e| xen_err("shutdown", e))
    }

    fn request_shutdown(
        &mut self,
        domid: u32,
        reason: ShutdownReason,
    ) -> Result<bool, HypervisorError> {
        let d = domid16(domid)?;
        let Some((_, xs)) = self.xenstore.as_mut() else {
            return Ok(false);
        };
        if !self.introduced.contains_key(&d) {
            return Ok(false);
        }
        xs.request_shutdown(d, reason.control_word())
            .map_err(|e| xen_err("xenstore", e))?;
        log::info!(
            "xenapi: asked domid {d} to {} (control/shutdown)",
            reason.control_word()
        );
        Ok(true)
    }

    fn host_memory(&mut self) -> Option<(u64, u64)> {
        let (free, total) = xcp_runtime::control::physinfo().ok()?;
        Some((total * 4096, free * 4096))
    }

    fn host_cpu_idle_ns(&mut self) -> Option<alloc::vec::Vec<u64>> {
        xcp_runtime::control::cpu_idle_ns().ok()
    }

    fn shutdown_acked(&mut self, domid: u32) -> Option<bool> {
        let d = u16::try_from(domid).ok()?;
        let (_, xs) = self.xenstore.as_mut()?;
        xs.shutdown_request(d).ok().map(|v| v.is_empty())
    }

    fn sr(&mut self, _sr_uuid: &str) -> Option<&mut dyn xenapi::storage::SrBackend> {
        // The host's one SR (the seeded "Local storage") is stordom's.
        self.sr
            .as_mut()
            .map(|sr| sr as &mut dyn xenapi::storage::SrBackend)
    }

    fn destroy(&mut self, domid: u32) -> Result<(), HypervisorError> {
        let d = domid16(domid)?;
        self.pvh.remove(&d);
        if !self.built.remove(&d) {
            log::debug!("xenapi: domid {d} is not a VM domain this dom0 built: left alone");
            return Ok(());
        }
        // What the VM wrote last is logged before its ring goes.
        self.close_console(d);
        let destroyed = self
            .xen
            .destroy_domain(d)
            .map_err(|e| xen_err("destroy", e));
        // Every way a VM's domain ends comes here (VM.hard_shutdown, a
        // stop its actions_after_* destroy or restart, a failed start): its
        // xenstore registration and tree go with it.
        if let Some(uuid) = self.introduced.remove(&d) {
            match self.xenstore.as_mut() {
                Some((_, xs)) => match xs.forget_vm(d, &uuid) {
                    Ok(()) => {
                        log::debug!("xenapi: domid {d} released from xenstore, /vm/{uuid} removed")
                    }
                    Err(e) => log::warn!("xenapi: domid {d}: {e}"),
                },
                None => log::warn!("xenapi: domid {d}: no xenstore domain to release it from"),
            }
        }
        destroyed
    }

    fn vif_attach(&mut self, domid: u32, vif: &VifDevice) -> Result<(), HypervisorError> {
        use xcp_dom0_board::vif_tree;
        let d = domid16(domid)?;
        let Some(backend) = self.netdom else {
            return Err(HypervisorError(String::from(
                "no network backend: netdom is not running",
            )));
        };
        let Some((_, xs)) = self.xenstore.as_mut() else {
            return Err(HypervisorError(String::from(
                "no network backend: no xenstore domain runs",
            )));
        };
        if !self.introduced.contains_key(&d) {
            return Err(HypervisorError(alloc::format!(
                "domid {d} has no xenstore tree for its VIFs"
            )));
        }
        let info = vif_info(d, backend, vif.devid, vif);
        vif_tree::attach(&mut *xs.store(), &info).map_err(|e| xen_err("xenstore", e))?;
        self.vifs.insert((d, vif.devid), (backend, vif.clone()));
        log::info!(
            "xenapi: vif {} of domid {d} ({}) handed to netdom (domid {backend})",
            vif.devid,
            vif_tree::mac_text(&vif.mac)
        );
        Ok(())
    }

    fn vif_detach(&mut self, domid: u32, devid: u32, force: bool) -> Result<(), HypervisorError> {
        use xcp_dom0_board::vif_tree;
        let d = domid16(domid)?;
        let Some(&(backend, _)) = self.vifs.get(&(d, devid)) else {
            return Ok(());
        };
        let Some((_, xs)) = self.xenstore.as_mut() else {
            // The xenstore domain went, and the directories with it.
            self.vifs.remove(&(d, devid));
            return Ok(());
        };
        let mut store = xs.store();
        if !force {
            return vif_tree::request_close(&mut *store, backend, d, devid)
                .map_err(|e| xen_err("xenstore", e));
        }
        self.vifs.remove(&(d, devid));
        vif_tree::remove(&mut *store, backend, d, devid).map_err(|e| xen_err("xenstore", e))?;
        log::info!("xenapi: vif {devid} of domid {d} removed");
        Ok(())
    }

    fn vif_rules(&mut self, domid: u32, vif: &VifDevice) -> Result<(), HypervisorError> {
        use xcp_dom0_board::vif_tree;
        let d = domid16(domid)?;
        let Some((backend, kept)) = self.vifs.get_mut(&(d, vif.devid)) else {
            return Err(HypervisorError(alloc::format!(
                "vif {} of domid {d} is not attached",
                vif.devid
            )));
        };
        *kept = vif.clone();
        let info = vif_info(d, *backend, vif.devid, vif);
        let Some((_, xs)) = self.xenstore.as_mut() else {
            return Err(HypervisorError(String::from(
                "no network backend: no xenstore domain runs",
            )));
        };
        vif_tree::set_rules(&mut *xs.store(), &info).map_err(|e| xen_err("xenstore", e))?;
        log::info!(
            "xenapi: vif {} of domid {d}: locking {}, allowed {:?} {:?}",
            vif.devid,
            vif.locking,
            vif.ipv4_allowed,
            vif.ipv6_allowed
        );
        Ok(())
    }

    fn vbd_attach(&mut self, domid: u32, vbd: &VbdDevice) -> Result<(), HypervisorError> {
        use xcp_dom0_board::vbd_tree;
        let d = domid16(domid)?;
        let Some(backend) = self.stordom else {
            return Err(HypervisorError(String::from(
                "no storage backend: stordom is not running",
            )));
        };
        let Some((_, xs)) = self.xenstore.as_mut() else {
            return Err(HypervisorError(String::from(
                "no storage backend: no xenstore domain runs",
            )));
        };
        if !self.introduced.contains_key(&d) {
            return Err(HypervisorError(alloc::format!(
                "domid {d} has no xenstore tree for its VBDs"
            )));
        }
        // An empty CD drive of a PV or PVH guest (no emulated drive to
        // hold it) has no device until a medium is inserted
        // (`vbd_change_media`), as xenopsd leaves it: a blkfront would
        // wait for a backend that never connects.
        if vbd.vdi.is_none() {
            log::info!(
                "xenapi: vbd {} ({}) of domid {d}: empty drive, no device until a medium is inserted",
                vbd.devid,
                vbd.dev
            );
            return Ok(());
        }
        let pvh = self.pvh.contains(&d);
        vbd_tree::attach(&mut *xs.store(), &vbd_info(d, backend, vbd, pvh))
            .map_err(|e| xen_err("xenstore", e))?;
        self.vbds.insert((d, vbd.devid), (backend, vbd.clone()));
        log::info!(
            "xenapi: vbd {} ({}) of domid {d} handed to stordom (domid {backend})",
            vbd.devid,
            vbd.dev
        );
        Ok(())
    }

    fn vbd_detach(&mut self, domid: u32, devid: u32, force: bool) -> Result<(), HypervisorError> {
        use xcp_dom0_board::vbd_tree;
        let d = domid16(domid)?;
        let Some(&(backend, _)) = self.vbds.get(&(d, devid)) else {
            return Ok(());
        };
        let Some((_, xs)) = self.xenstore.as_mut() else {
            self.vbds.remove(&(d, devid));
            return Ok(());
        };
        let mut store = xs.store();
        if !force {
            return vbd_tree::request_close(&mut *store, backend, d, devid)
                .map_err(|e| xen_err("xenstore", e));
        }
        self.vbds.remove(&(d, devid));
        vbd_tree::remove(&mut *store, backend, d, devid).map_err(|e| xen_err("xenstore", e))?;
        log::info!("xenapi: vbd {devid} of domid {d} removed");
        Ok(())
    }

    /// A PV or PVH guest's CD has no emulated drive whose medium could
    /// change under the guest: as xenopsd does for such guests, an insert
    /// plugs a device with the medium and an eject removes it (at once: a
    /// CD is read-only, nothing the guest wrote can be lost). The guest
    /// sees the drive appear and go.
    fn vbd_change_media(&mut self, domid: u32, vbd: &VbdDevice) -> Result<(), HypervisorError> {
        let d = domid16(domid)?;
        match vbd.vdi {
            Some(_) => self.vbd_attach(domid, vbd),
            None => {
                let had = self.vbds.contains_key(&(d, vbd.devid));
                self.vbd_detach(domid, vbd.devid, true)?;
                if had {
                    log::info!("xenapi: vbd {} of domid {d}: medium ejected", vbd.devid);
                }
                Ok(())
            }
        }
    }

    fn vbd_closed(&mut self, domid: u32, devid: u32) -> Option<bool> {
        let d = u16::try_from(domid).ok()?;
        let Some(&(backend, _)) = self.vbds.get(&(d, devid)) else {
            return Some(true);
        };
        let (_, xs) = self.xenstore.as_mut()?;
        let closed =
            xcp_dom0_board::vbd_tree::backend_closed(&mut *xs.store(), backend, d, devid).ok();
        closed
    }

    fn vif_closed(&mut self, domid: u32, devid: u32) -> Option<bool> {
        let d = u16::try_from(domid).ok()?;
        let Some(&(backend, _)) = self.vifs.get(&(d, devid)) else {
            return Some(true);
        };
        let (_, xs) = self.xenstore.as_mut()?;
        let closed =
            xcp_dom0_board::vif_tree::backend_closed(&mut *xs.store(), backend, d, devid).ok();
        closed
    }

    fn console_read(
        &mut self,
        domid: u32,
        from: u64,
        max: usize,
    ) -> Option<(alloc::vec::Vec<u8>, u64)> {
        let link = self.consoles.get(&u16::try_from(domid).ok()?)?;
        Some(link.state().read_from(from, max))
    }

    fn console_write(&mut self, domid: u32, bytes: &[u8]) -> Option<usize> {
        let link = self.consoles.get_mut(&u16::try_from(domid).ok()?)?;
        Some(link.write_input(bytes))
    }

    fn guest_read(&mut self, domid: u32, path: &str) -> Option<alloc::vec::Vec<u8>> {
        let (d, xs) = self.guest_tree_link(domid)?;
        xs.guest_read(d, path).ok()
    }

    fn guest_list(&mut self, domid: u32, path: &str) -> Option<alloc::vec::Vec<String>> {
        let (d, xs) = self.guest_tree_link(domid)?;
        xs.guest_list(d, path).ok()
    }

    fn domain_stats(&mut self, domid: u32) -> Option<xenapi::hypervisor::DomainStats> {
        let d = u16::try_from(domid).ok()?;
        if !self.built.contains(&d) {
            return None;
        }
        let info = xcp_runtime::control::domain_info(d).ok()?;
        // Xen answers the next domain at or after `d` when `d` is gone.
        if info.domain != d {
            return None;
        }
        let vcpus = (info.max_vcpu_id.saturating_add(1) as usize).min(xenapi::rrd::MAX_VCPUS);
        let vcpu_time_ns = (0..vcpus as u32)
            .map(|v| {
                xcp_runtime::control::vcpu_info(d, v)
                    .map(|i| i.cpu_time)
                    .unwrap_or(0)
            })
            .collect();
        Some(xenapi::hypervisor::DomainStats {
            memory_bytes: info.tot_pages * 4096,
            vcpu_time_ns,
        })
    }
}

/// Now, as the engine counts time: ms since the Unix epoch.
fn now() -> Instant {
    Instant(xcp_runtime::time::wallclock_ms())
}

/// The engine and the connections relayed to it (each relay link named by
/// dom0's port of that relay's channel).
pub struct Toolstack {
    engine: Engine<XenHypervisor, Db, XenEntropy>,
    relayed: Relayed,
    /// Asks Xen about the VMs' domains.
    xen: Xen,
    /// VIF counters or links from a relay domain that is not netdom
    /// (ignored: only the domain serving the VIFs speaks for them).
    pub foreign_reports: u64,
    /// The netdom whose VIF counters came last (a rebuilt netdom counts
    /// from 0: its first counters start every rate again).
    reports_from: Option<u16>,
}

impl Toolstack {
    /// Opens the engine with root's password hash over the database log
    /// in `db` (replayed) and seeds the host on its first boot.
    pub fn new(
        password_hash: &str,
        images: BTreeMap<String, &'static [u8]>,
        db: Db,
    ) -> Result<Self, String> {
        let hash = PasswordHash::parse(password_hash).ok_or_else(|| {
            String::from("[toolstack] root_password_hash is not a pbkdf2-sha256 hash")
        })?;
        let mut config = Config::new("root", hash);
        if matches!(db, Db::Volatile(_)) {
            // No log is kept: never compact one.
            config.compact_min_bytes = u64::MAX / 2;
        }
        let hv = XenHypervisor {
            images,
            xenstore: None,
            introduced: BTreeMap::new(),
            netdom: None,
            vifs: BTreeMap::new(),
            consoles: BTreeMap::new(),
            watches: alloc::vec::Vec::new(),
            built: alloc::collections::BTreeSet::new(),
            pvh: alloc::collections::BTreeSet::new(),
            stepping: None,
            stordom: None,
            vbds: BTreeMap::new(),
            sr: match &db {
                Db::Stordom(client) => Some(crate::storage::StordomSr(client.clone())),
                Db::Volatile(_) => None,
            },
            xen: Xen::new(),
        };
        let mut engine = Engine::open(config, hv, db, XenEntropy)
            .map_err(|e| alloc::format!("database: {e:?}"))?;
        let fresh = engine
            .seed(now(), "xcp-rs", "dom0")
            .map_err(|e| alloc::format!("seed: {e:?}"))?;
        if !fresh {
            // The platform rebooted: no VM domain survived it. Every VM
            // the database remembers running is Halted (as xapi resyncs
            // power states at host boot); its domid names nothing of ours.
            for domid in engine.running_domids() {
                if let Err(e) = engine.domain_stopped(now(), domid, StopReason::Vanished) {
                    return Err(alloc::format!("power state after reboot: {e:?}"));
                }
            }
        }
        Ok(Toolstack {
            engine,
            relayed: Relayed::new(),
            xen: Xen::new(),
            foreign_reports: 0,
            reports_from: None,
        })
    }

    /// Lends the toolstack dom0's connection to the xenstore domain `xs`
    /// (its domid and the link), or takes it back (None: none runs). dom0
    /// calls this before every engine call, so VMs built or destroyed in
    /// it use the xenstore domain that runs now.
    pub fn lend_xenstore(&mut self, xs: Option<(u16, XsLink)>) {
        self.engine.hypervisor().xenstore = xs;
    }

    /// netdom was rebuilt as `netdom` (after the board lent the new one
    /// with [`Toolstack::lend_netdom`]): every VIF dom0 handed the old one
    /// gets its backend directory again (xenstore dropped the old one with
    /// the old domain), so the new netdom takes the frontends over in
    /// place; returns how many.
    pub fn netdom_rebuilt(&mut self, netdom: u16) -> usize {
        self.engine.hypervisor().netdom_rebuilt(netdom)
    }

    /// stordom was rebuilt: the database's client talks to it over
    /// `link` from now on, re-reads the log's length (what the old stordom
    /// had committed), and an engine a failed write stopped writes the
    /// whole database again and serves calls. Returns whether the
    /// database lives on stordom at all.
    pub fn stordom_rebuilt(&mut self, stordom: u16, link: crate::storage::StordomLink) -> bool {
        let n = self.engine.hypervisor().vbds_rebuilt(stordom);
        if n > 0 {
            log::info!("xenapi: {n} guest VBD(s) handed to the rebuilt stordom");
        }
        let Some(sr) = self.engine.hypervisor().sr.as_ref().map(|sr| sr.0.clone()) else {
            return false;
        };
        *sr.borrow_mut().link_mut() = link;
        match sr.borrow_mut().status() {
            Ok(status) => log::info!(
                "xenapi: database log on the rebuilt stordom: {} bytes{}",
                status.log_len,
                status
                    .read_only
                    .map(|why| alloc::format!(" (read-only: {why})"))
                    .unwrap_or_default()
            ),
            Err(e) => log::error!("xenapi: the rebuilt stordom does not answer: {e:?}"),
        }
        if self.engine.poisoned() {
            match self.engine.storage_restored() {
                Ok(()) => log::info!("xenapi: database written again to stordom: calls served"),
                Err(e) => log::error!("xenapi: database still unavailable: {e:?}"),
            }
        }
        true
    }

    /// Tells the toolstack netdom's domid while it runs (the backend
    /// VIFs are handed to), or that none runs: a VM with VIFs then fails
    /// to start. dom0 calls this with [`Toolstack::lend_xenstore`].
    pub fn lend_netdom(&mut self, domid: Option<u16>) {
        self.engine.hypervisor().netdom = domid;
    }

    /// Tells the toolstack stordom's domid while it runs (the backend
    /// VBDs are handed to), or that none runs: a VM with VBDs then fails
    /// to start. dom0 calls this with [`Toolstack::lend_xenstore`].
    pub fn lend_stordom(&mut self, domid: Option<u16>) {
        self.engine.hypervisor().stordom = domid;
    }

    /// Looks at the domain of every VM the engine believes runs and
    /// reports those Xen says shut down (or no longer knows) to the engine,
    /// which applies the VM's `actions_after_*`. dom0 calls this on
    /// VIRQ_DOM_EXC / `@releaseDomain` and on a 1 s timer. Returns whether
    /// the engine changed (parked `event.from` calls should be served).
    pub fn check_vms(&mut self) -> bool {
        use xcp_domains::{observe, Observed, Reason};
        // Xen's free memory, as host_metrics shows it: a destroyed
        // domain's pages come back as its last references go.
        let mut changed = match self.engine.sync_host_memory(now()) {
            Ok(c) => c,
            Err(e) => {
                log::error!("xenapi: host memory: {e:?}");
                false
            }
        };
        // The guest agents' keys (a bounded poll of a few guests) and,
        // every 5 s, the performance samples of /rrd_updates.
        changed |= match self.engine.monitor(now()) {
            Ok(c) => c,
            Err(e) => {
                log::error!("xenapi: guest metrics: {e:?}");
                false
            }
        };
        for domid in self.engine.running_domids() {
            let Ok(d) = u16::try_from(domid) else {
                continue;
            };
            let observed = match self.xen.domain_info(d) {
                Ok(info) if info.domain == d => observe(info.flags),
                _ => Observed::Gone,
            };
            let (reason, word) = match observed {
                Observed::Alive | Observed::Dying => continue,
                Observed::Gone => (StopReason::Vanished, "vanished"),
                Observed::Shutdown(r) => (
                    match r {
                        Reason::Poweroff => StopReason::Poweroff,
                        Reason::Reboot => StopReason::Reboot,
                        Reason::Crash | Reason::Watchdog => StopReason::Crash,
                        _ => StopReason::Other,
                    },
                    r.as_str(),
                ),
            };
            match self.engine.domain_stopped(now(), domid, reason) {
                Ok(Some(stopped)) => {
                    changed = true;
                    let name = &stopped.name;
                    let policy = stopped.policy;
                    if let Some(e) = &stopped.destroy_error {
                        log::warn!("xenapi: VM {name}: destroying domid {domid}: {e}");
                    }
                    match stopped.outcome {
                        AfterStop::Halted => log::info!(
                            "xenapi: VM {name} (domid {domid}) stopped: {word}; {policy}: destroyed, Halted"
                        ),
                        AfterStop::Restarted { domid: new } => log::info!(
                            "xenapi: VM {name} (domid {domid}) stopped: {word}; {policy}: restarted as domid {new}"
                        ),
                        AfterStop::Preserved => log::info!(
                            "xenapi: VM {name} (domid {domid}) stopped: {word}; {policy}: preserved"
                        ),
                        AfterStop::GaveUp { restarts } => log::warn!(
                            "xenapi: VM {name} (domid {domid}) stopped: {word}; {restarts} restarts in {} s: Halted",
                            xenapi::lifecycle::RESTART_WINDOW_MS / 1000
                        ),
                        AfterStop::RestartFailed(e) => log::error!(
                            "xenapi: VM {name} (domid {domid}) stopped: {word}; restart failed ({e}): Halted"
                        ),
                    }
                }
                Ok(None) => {}
                Err(e) => log::error!("xenapi: VM domid {domid} stopped: {e:?}"),
            }
        }
        changed
    }

    /// Event-loop watches of VM consoles to apply (port, watch or
    /// unwatch) since the last call.
    pub fn take_watches(&mut self) -> alloc::vec::Vec<(u32, bool)> {
        core::mem::take(&mut self.engine.hypervisor().watches)
    }

    /// Drains the VM console whose event came on `port`; returns whether
    /// one did.
    pub fn on_console_event(&mut self, port: u32) -> bool {
        let hv = self.engine.hypervisor();
        match hv.consoles.values_mut().find(|c| c.port == port) {
            Some(link) => {
                link.drain();
                true
            }
            None => false,
        }
    }

    /// Connections with a parked call (`event.from` waiting for changes)
    /// or pipelined requests deferred while their link's backlog was full.
    pub fn has_parked(&self) -> bool {
        self.relayed.has_parked() || self.engine.has_parked_jobs()
    }

    /// True if `Async.*` calls are queued: [`Self::run_next_job`] runs
    /// them, one per call, once the replies naming their tasks are sent.
    pub fn has_jobs(&self) -> bool {
        self.engine.has_jobs()
    }

    /// True while a VM start's domain build is in progress (a step per
    /// pass: the board pumps its relays and calls [`Self::run_next_job`]
    /// again until it ends).
    pub fn building(&self) -> bool {
        self.engine.building()
    }

    /// Runs the oldest queued `Async.*` call (a `VM.start` builds a whole
    /// domain here); returns whether its task ended.
    pub fn run_next_job(&mut self) -> bool {
        self.engine.run_next_job(now())
    }

    /// Takes one message from relay `link`; queues what to send back on
    /// that link in `out`.
    pub fn on_message(&mut self, link: u32, msg: ToToolstack, out: &mut VecDeque<FromToolstack>) {
        self.relayed
            .on_message(&mut self.engine, now(), link, msg, out);
    }

    /// netdom's VIF counters (`ToToolstack::VifStats`) from relay domain
    /// `from`, for `VIF_metrics`; returns whether a record changed. Only
    /// the netdom the toolstack was lent speaks for the VIFs.
    pub fn vif_stats(&mut self, from: u16, entries: &[VifCounters]) -> bool {
        if self.engine.hypervisor().netdom != Some(from) {
            self.foreign_reports += 1;
            return false;
        }
        if self.reports_from.replace(from) != Some(from) {
            self.engine.restart_vif_samples();
        }
        self.engine.vif_stats(now(), entries).unwrap_or_else(|e| {
            log::error!("xenapi: VIF counters: {e:?}");
            false
        })
    }

    /// netdom's management interface (`ToToolstack::Link`) from relay
    /// domain `from`, for the management PIF; returns whether it changed.
    pub fn management_link(&mut self, from: u16, link: &ManagementLink) -> bool {
        if self.engine.hypervisor().netdom != Some(from) {
            self.foreign_reports += 1;
            return false;
        }
        self.engine
            .management_link(now(), link)
            .unwrap_or_else(|e| {
                log::error!("xenapi: management link: {e:?}");
                false
            })
    }

    /// Forgets every connection of relay `link` (its relay domain died):
    /// their parked calls end with them.
    pub fn drop_link(&mut self, link: u32) -> usize {
        self.relayed.drop_link(&mut self.engine, now(), link)
    }

    /// Serves `link`'s parked connections again (after a change or a
    /// timeout).
    pub fn tick(&mut self, link: u32, out: &mut VecDeque<FromToolstack>) {
        self.relayed.tick(&mut self.engine, now(), link, out);
    }
}

/// dom0's end of a relay: the channel, its event port and the replies not
/// yet accepted by the channel. The relay's counters (`ToToolstack::Stats`,
/// the operator's `stats` command) and its readiness (`ToToolstack::Ready`,
/// dom0's "XenAPI ready" announcement) stop here: they are for dom0's
/// board, not the toolstack. netdom's VIF counters and management link
/// (`VifStats`, `Link`) go to the engine's records, not to a connection.
pub struct RelayLink {
    /// The channel (dom0 granted its pages).
    pub channel: Channel<Frame>,
    /// dom0's event-channel port.
    pub port: u32,
    /// The relay domain.
    pub domid: u16,
    backlog: VecDeque<FromToolstack>,
    /// Bytes the backlog holds (at most [`MAX_BACKLOG`] plus one reply).
    backlog_bytes: usize,
    /// A `StatsRequest` is queued or sent and not answered yet.
    stats_asked: bool,
    /// What the operator asked for since the last answer was taken.
    shown: Shown,
    /// Counters the relay sent, not shown yet.
    stats: Option<RelayStats>,
    /// Where the relay said it listens, not announced yet.
    ready: Option<([u8; 4], u16)>,
}

/// Which answer lines an operator command wants from a relay's counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Shown {
    /// The `stats` line.
    pub counters: bool,
    /// The `mem` line.
    pub memory: bool,
}

impl RelayLink {
    /// A link to relay domain `domid` over `channel`, kicked through `port`.
    pub fn new(channel: Channel<Frame>, port: u32, domid: u16) -> Self {
        RelayLink {
            channel,
            port,
            domid,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            stats_asked: false,
            shown: Shown::default(),
            stats: None,
            ready: None,
        }
    }

    /// Counts the messages queued since the backlog held `from`.
    fn count_queued(&mut self, from: usize) {
        self.backlog_bytes += self.backlog.range(from..).map(message_bytes).sum::<usize>();
    }

    /// Asks the relay for its counters (sent by the next [`Self::pump`])
    /// for the lines `want` names; while an earlier request is unanswered
    /// nothing more is queued (its answer shows both).
    pub fn request_stats(&mut self, want: Shown) {
        self.shown.counters |= want.counters;
        self.shown.memory |= want.memory;
        if !core::mem::replace(&mut self.stats_asked, true) {
            self.backlog.push_back(FromToolstack::StatsRequest);
            self.backlog_bytes += message_bytes(&FromToolstack::StatsRequest);
        }
    }

    /// The counters the relay sent since the last call, if any, with the
    /// lines asked for them.
    pub fn take_stats(&mut self) -> Option<(RelayStats, Shown)> {
        let stats = self.stats.take()?;
        Some((stats, core::mem::take(&mut self.shown)))
    }

    /// The address and port the relay said it listens at since the last
    /// call, if it said so.
    pub fn take_ready(&mut self) -> Option<([u8; 4], u16)> {
        self.ready.take()
    }

    /// Puts queued replies on the ring as far as it takes them; returns
    /// whether the relay must be kicked.
    fn send_backlog(&mut self) -> Result<bool, String> {
        let mut kick = false;
        match self.channel.flush() {
            Ok(n) | Err(SendError::WouldBlock(n)) => kick |= n.kick(),
            Err(e) => return Err(alloc::format!("relay channel: {e:?}")),
        }
        while let Some(msg) = self.backlog.front() {
            match self.channel.send(msg) {
                Ok(n) => {
                    kick |= n.kick();
                    let sent = self.backlog.pop_front().as_ref().map_or(0, message_bytes);
                    self.backlog_bytes -= sent;
                }
                Err(SendError::WouldBlock(n)) => {
                    kick |= n.kick();
                    break;
                }
                Err(e) => return Err(alloc::format!("relay channel: {e:?}")),
            }
        }
        Ok(kick)
    }

    /// Moves everything that can move: replies out, requests in.
    pub fn pump(&mut self, toolstack: &mut Toolstack) -> Result<(), String> {
        let mut kick = false;
        loop {
            kick |= self.send_backlog()?;
            // Stop reading while the relay does not take our replies.
            if self.backlog_bytes >= MAX_BACKLOG {
                break;
            }
            match self.channel.recv::<ToToolstack>() {
                Ok(Some(ToToolstack::Stats(stats))) => {
                    self.stats = Some(stats);
                    self.stats_asked = false;
                }
                Ok(Some(ToToolstack::Ready { address, port })) => {
                    self.ready = Some((address, port));
                }
                // netdom's reports go to the engine's records; parked
                // calls they release are served at `Ok(None)` below (and
                // on the other links when the board pumps them).
                Ok(Some(ToToolstack::VifStats(entries))) => {
                    toolstack.vif_stats(self.domid, &entries);
                }
                Ok(Some(ToToolstack::Link {
                    mac,
                    address,
                    prefix,
                    gateway,
                    dhcp,
                })) => {
                    let link = ManagementLink {
                        mac,
                        address,
                        prefix,
                        gateway,
                        dhcp,
                    };
                    toolstack.management_link(self.domid, &link);
                }
                Ok(Some(msg)) => {
                    let queued = self.backlog.len();
                    toolstack.on_message(self.port, msg, &mut self.backlog);
                    self.count_queued(queued);
                }
                Ok(None) => {
                    let queued = self.backlog.len();
                    toolstack.tick(self.port, &mut self.backlog);
                    self.count_queued(queued);
                    // Every request that came is answered; queued `Async.*`
                    // calls run now, one per pass, each after the replies
                    // before it are on the ring and the relay is kicked (a
                    // reply names its task), and with the requests that
                    // came during it served before the next: 50 VM.starts
                    // at once do not hold other clients' calls, or their
                    // own tasks' references, until the last is built.
                    // (While a domain build is in progress the board
                    // steps it between passes over every relay.)
                    if toolstack.has_jobs() && !toolstack.building() {
                        kick |= self.send_backlog()?;
                        if core::mem::take(&mut kick) {
                            xcp_runtime::evtchn::send(self.port);
                        }
                        toolstack.run_next_job();
                        continue;
                    }
                    if self.backlog.is_empty() || self.channel.send_pending() {
                        break;
                    }
                }
                Err(e) => return Err(alloc::format!("relay channel: {e:?}")),
            }
        }
        kick |= self.channel.take_notify().kick();
        if kick {
            xcp_runtime::evtchn::send(self.port);
        }
        Ok(())
    }
}
