//! Checks every struct, union and constant of xen-sys against Xen's own C
//! headers.
//!
//! Read first: /usr/include/xen (Debian `libxen-dev`, Xen 4.17). The test
//! generates a C program from the tables below (each type, field and constant
//! is listed once, here), compiles it with `cc` against the installed
//! headers, runs it, and compares every size, alignment, field offset, field
//! size and constant value with what Rust computes. A missing header or
//! compiler is a failure, never a skip. Three guards keep the tables
//! complete: every `pub struct`/`pub union`, every `pub` field of one, and
//! every `pub const` under `src/` (and under `../xen-abi/src/`, whose items
//! xen-sys re-exports) must be checked here or listed in an exemption with
//! its reason.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use xen_sys::domctl::*;
use xen_sys::event_channel::*;
use xen_sys::grant_table::*;
use xen_sys::hvm::*;
use xen_sys::hvm_save::*;
use xen_sys::hvm_start_info::*;
use xen_sys::hvm_vcpu::*;
use xen_sys::io::console::*;
use xen_sys::io::xs_wire::*;
use xen_sys::memory::*;
use xen_sys::physdev::*;
use xen_sys::sched::*;
use xen_sys::sysctl::*;
use xen_sys::vcpu::*;
use xen_sys::version::*;
use xen_sys::xen::*;

/// Where the headers live; `XEN_INCLUDE_DIR` overrides (its parent holds `xen/`).
const DEFAULT_INCLUDE_DIR: &str = "/usr/include";

/// The interface version we build against: `__XEN_LATEST_INTERFACE_VERSION__`
/// of the 4.17 headers (xen-compat.h). `__XEN_TOOLS__` makes domctl.h and
/// sysctl.h usable and also selects the latest version.
const XEN_INTERFACE_VERSION: &str = "0x00040e00";

/// One value both sides compute: `key` names it, `c_expr` is the C expression
/// (printed as `long long`), `rust` is Rust's answer.
struct Check {
    key: String,
    c_expr: String,
    rust: i64,
}

/// Every check, and what the checks cover (for the completeness guards).
struct Tables {
    checks: Vec<Check>,
    types: BTreeSet<&'static str>,
    /// (Rust type, its top-level Rust field) pairs that some check covers.
    fields: BTreeSet<(String, String)>,
    consts: BTreeSet<String>,
}

impl Tables {
    fn new() -> Self {
        Tables {
            checks: Vec::new(),
            types: BTreeSet::new(),
            fields: BTreeSet::new(),
            consts: BTreeSet::new(),
        }
    }

    fn push(&mut self, key: String, c_expr: String, rust: i64) {
        self.checks.push(Check { key, c_expr, rust });
    }

    fn ty(&mut self, rust: &'static str, c: &str, size: usize, align: usize) {
        self.types.insert(rust);
        self.push(
            format!("{rust} ({c}) size"),
            format!("sizeof({c})"),
            size as i64,
        );
        self.push(
            format!("{rust} ({c}) align"),
            format!("__alignof__({c})"),
            align as i64,
        );
    }

    fn field(
        &mut self,
        rust: &str,
        rust_path: &str,
        c: &str,
        field: &str,
        offset: usize,
        size: usize,
    ) {
        let top = rust_path.split('.').next().unwrap_or(rust_path).trim();
        self.fields.insert((rust.to_string(), ident(top)));
        let field = field.trim_start_matches("r#").replace(" ", "");
        self.push(
            format!("{rust} ({c}) .{field} offset"),
            format!("offsetof({c}, {field})"),
            offset as i64,
        );
        self.push(
            format!("{rust} ({c}) .{field} size"),
            format!("sizeof((({c} *)0)->{field})"),
            size as i64,
        );
    }
}

/// Size of the field a closure points at (works for packed and union fields).
fn field_size<T, F>(_: fn(&T) -> *const F) -> usize {
    core::mem::size_of::<F>()
}

/// A closure returning a pointer to field `path` of a `$rty`.
macro_rules! field_ptr {
    ($rty:ty; $($rf:ident).+) => {{
        #[allow(unused_unsafe, reason = "only union fields need the unsafe block")]
        let pointer = |s: &$rty| {
            // SAFETY: only the field's address is taken; nothing is read.
            unsafe { core::ptr::addr_of!(s.$($rf).+) }
        };
        pointer
    }};
}

/// `name`, or `c_name => rust.path`, one field at a time.
macro_rules! fields {
    ($t:ident; $rty:ty; $c:expr; ) => {};
    ($t:ident; $rty:ty; $c:expr; $cf:literal => $($rf:ident).+ $(, $($rest:tt)*)?) => {
        $t.field(
            stringify!($rty),
            stringify!($($rf).+),
            $c,
            $cf,
            core::mem::offset_of!($rty, $($rf).+),
            field_size::<$rty, _>(field_ptr!($rty; $($rf).+)),
        );
        fields!($t; $rty; $c; $($($rest)*)?);
    };
    ($t:ident; $rty:ty; $c:expr; $f:ident $(, $($rest:tt)*)?) => {
        $t.field(
            stringify!($rty),
            stringify!($f),
            $c,
            stringify!($f),
            core::mem::offset_of!($rty, $f),
            field_size::<$rty, _>(field_ptr!($rty; $f)),
        );
        fields!($t; $rty; $c; $($($rest)*)?);
    };
}

/// `"C type" => RustType { fields }`, each type once.
macro_rules! layouts {
    ($t:ident; $( $c:expr => $rty:ty { $($fields:tt)* } )*) => {
        $(
            $t.ty(
                stringify!($rty),
                $c,
                core::mem::size_of::<$rty>(),
                core::mem::align_of::<$rty>(),
            );
            fields!($t; $rty; $c; $($fields)*);
        )*
    };
}

/// `module: [CONST, ...];` — the C name is found in the headers' macros.
macro_rules! consts {
    ($t:ident; $( $($m:ident)::+ : [ $($name:ident),* $(,)? ]; )*) => {
        $({
            use xen_sys::$($m)::+ as module;
            let module_name = stringify!($($m)::+).replace(" ", "");
            $(
                $t.consts.insert(format!("{}::{}", module_name, stringify!($name)));
                $t.push(
                    format!("const {}::{}", module_name, stringify!($name)),
                    stringify!($name).to_string(),
                    module::$name as i64,
                );
            )*
        })*
    };
}

/// Typeof of a member: for anonymous nested structs and unions.
macro_rules! member {
    ($outer:literal, $path:literal) => {
        concat!("__typeof__(((", $outer, " *)0)->", $path, ")")
    };
}

/// Every struct and union of the crate, with the C fields it mirrors. Fields
/// that exist only on the Rust side (explicit padding the C compiler adds
/// implicitly, alignment helpers) are not listed; the sizes catch any excess.
fn layout_tables(t: &mut Tables) {
    layouts! { t;
        // xen.h, arch-x86/xen.h, arch-x86/xen-x86_64.h
        "struct start_info" => StartInfo {
            magic, nr_pages, shared_info, flags, store_mfn, store_evtchn, console,
            "console.domU.mfn" => console.domu.mfn, "console.domU.evtchn" => console.domu.evtchn,
            "console.dom0.info_off" => console.dom0.info_off,
            "console.dom0.info_size" => console.dom0.info_size,
            pt_base, nr_pt_frames, mfn_list, mod_start, mod_len, cmd_line, first_p2m_pfn,
            nr_p2m_frames,
        }
        member!("struct start_info", "console") => StartInfoConsole { "domU" => domu, dom0 }
        member!("struct start_info", "console.domU") => StartInfoConsoleDomU { mfn, evtchn }
        member!("struct start_info", "console.dom0") => StartInfoConsoleDom0 { info_off, info_size }
        "struct vcpu_time_info" => VcpuTimeInfo {
            version, pad0, tsc_timestamp, system_time, tsc_to_system_mul, tsc_shift, flags, pad1,
        }
        "struct arch_vcpu_info" => ArchVcpuInfo { cr2, pad }
        "struct vcpu_info" => VcpuInfo {
            evtchn_upcall_pending, evtchn_upcall_mask, evtchn_pending_sel, arch, time,
        }
        "struct arch_shared_info" => ArchSharedInfo {
            max_pfn, pfn_to_mfn_frame_list_list, nmi_reason, p2m_cr3, p2m_vaddr, p2m_generation,
        }
        "struct shared_info" => SharedInfo {
            vcpu_info, evtchn_pending, evtchn_mask, wc_version, wc_sec, wc_nsec, wc_sec_hi, arch,
        }
        "struct mmu_update" => MmuUpdate { ptr, val }
        "struct mmuext_op" => MmuextOp { cmd, arg1, arg2 }
        // memory.h, hvm/e820.h
        "struct xen_memory_reservation" => MemoryReservation {
            extent_start, nr_extents, extent_order, mem_flags, domid,
        }
        "struct xen_memory_exchange" => MemoryExchange { "in" => in_, out, nr_exchanged }
        "struct xen_add_to_physmap" => AddToPhysmap { domid, size, space, idx, gpfn }
        "struct xen_remove_from_physmap" => RemoveFromPhysmap { domid, gpfn }
        "struct xen_memory_map" => MemoryMap { nr_entries, buffer }
        // No public header defines the entry: memory.h says "the same format
        // as returned by the BIOS INT 0x15 EAX=0xE820 call", see C_LOCAL_DEFS.
        "struct bios_e820_entry" => E820Entry { addr, size, "type" => kind }
        // sched.h, version.h
        "struct sched_shutdown" => SchedShutdown { reason }
        "struct sched_poll" => SchedPoll { ports, nr_ports, timeout }
        "struct sched_remote_shutdown" => SchedRemoteShutdown { domain_id, reason }
        "struct xen_platform_parameters" => PlatformParameters { virt_start }
        "struct xen_feature_info" => FeatureInfo { submap_idx, submap }
        // event_channel.h
        "struct evtchn_alloc_unbound" => EvtchnAllocUnbound { dom, remote_dom, port }
        "struct evtchn_bind_interdomain" => EvtchnBindInterdomain {
            remote_dom, remote_port, local_port,
        }
        "struct evtchn_bind_virq" => EvtchnBindVirq { virq, vcpu, port }
        "struct evtchn_bind_pirq" => EvtchnBindPirq { pirq, flags, port }
        "struct evtchn_bind_ipi" => EvtchnBindIpi { vcpu, port }
        "struct evtchn_close" => EvtchnClose { port }
        "struct evtchn_send" => EvtchnSend { port }
        "struct evtchn_unmask" => EvtchnUnmask { port }
        "struct evtchn_status" => EvtchnStatus {
            dom, port, status, vcpu, u,
            "u.unbound.dom" => u.unbound.dom, "u.interdomain.dom" => u.interdomain.dom,
            "u.interdomain.port" => u.interdomain.port, "u.pirq" => u.pirq, "u.virq" => u.virq,
        }
        member!("struct evtchn_status", "u") => EvtchnStatusU { unbound, interdomain, pirq, virq }
        member!("struct evtchn_status", "u.unbound") => EvtchnStatusUnbound { dom }
        member!("struct evtchn_status", "u.interdomain") => EvtchnStatusInterdomain { dom, port }
        "struct evtchn_bind_vcpu" => EvtchnBindVcpu { port, vcpu }
        "struct evtchn_reset" => EvtchnReset { dom }
        // grant_table.h
        "struct grant_entry_v1" => GrantEntryV1 { flags, domid, frame }
        "struct gnttab_map_grant_ref" => GnttabMapGrantRef {
            host_addr, flags, r#ref, dom, status, handle, dev_bus_addr,
        }
        "struct gnttab_unmap_grant_ref" => GnttabUnmapGrantRef {
            host_addr, dev_bus_addr, handle, status,
        }
        "struct gnttab_setup_table" => GnttabSetupTable { dom, nr_frames, status, frame_list }
        "struct gnttab_copy_ptr" => GnttabCopyPtr {
            u, "u.ref" => u.r#ref, "u.gmfn" => u.gmfn, domid, offset,
        }
        member!("struct gnttab_copy_ptr", "u") => GnttabCopyPtrU { r#ref, gmfn }
        "struct gnttab_copy" => GnttabCopy { source, dest, len, flags, status }
        "struct gnttab_query_size" => GnttabQuerySize { dom, nr_frames, max_nr_frames, status }
        "struct gnttab_set_version" => GnttabSetVersion { version }
        // vcpu.h, arch-x86/xen.h, arch-x86/xen-x86_64.h
        "struct vcpu_runstate_info" => VcpuRunstateInfo { state, state_entry_time, time }
        "struct vcpu_set_periodic_timer" => VcpuSetPeriodicTimer { period_ns }
        "struct vcpu_set_singleshot_timer" => VcpuSetSingleshotTimer { timeout_abs_ns, flags }
        "struct vcpu_register_vcpu_info" => VcpuRegisterVcpuInfo { mfn, offset, rsvd }
        "struct vcpu_register_runstate_memory_area" => VcpuRegisterRunstateMemoryArea {
            "addr.p" => addr,
        }
        "struct vcpu_get_physid" => VcpuGetPhysid { phys_id }
        "struct trap_info" => TrapInfo { vector, flags, cs, address }
        "struct cpu_user_regs" => CpuUserRegs {
            r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi, error_code,
            entry_vector, rip, cs, _pad0, saved_upcall_mask, _pad1, rflags, rsp, ss, _pad2, es,
            _pad3, ds, _pad4, fs, _pad5, gs, _pad6,
        }
        member!("struct vcpu_guest_context", "fpu_ctxt") => FpuCtxt { x }
        "struct vcpu_guest_context" => VcpuGuestContext {
            fpu_ctxt, flags, user_regs, trap_ctxt, ldt_base, ldt_ents, gdt_frames, gdt_ents,
            kernel_ss, kernel_sp, ctrlreg, debugreg, event_callback_eip, failsafe_callback_eip,
            syscall_callback_eip, vm_assist, fs_base, gs_base_kernel, gs_base_user,
        }
        // physdev.h
        "struct physdev_eoi" => PhysdevEoi { irq }
        "struct physdev_pirq_eoi_gmfn" => PhysdevPirqEoiGmfn { gmfn }
        "struct physdev_irq_status_query" => PhysdevIrqStatusQuery { irq, flags }
        "struct physdev_set_iopl" => PhysdevSetIopl { iopl }
        "struct physdev_set_iobitmap" => PhysdevSetIobitmap { bitmap, nr_ports }
        "struct physdev_map_pirq" => PhysdevMapPirq {
            domid, r#type, index, pirq, bus, devfn, entry_nr, table_base,
        }
        "struct physdev_unmap_pirq" => PhysdevUnmapPirq { domid, pirq }
        "struct physdev_manage_pci" => PhysdevManagePci { bus, devfn }
        member!("struct physdev_pci_device_add", "physfn") => PhysdevPhysfn { bus, devfn }
        // `optarr` is a C flexible array member: sizeof() of it does not
        // compile, and its offset equals the struct's size, checked here.
        "struct physdev_pci_device_add" => PhysdevPciDeviceAdd { seg, bus, devfn, flags, physfn }
        "struct physdev_pci_device" => PhysdevPciDevice { seg, bus, devfn }
        "struct physdev_setup_gsi" => PhysdevSetupGsi { gsi, triggering, polarity }
        "struct physdev_get_free_pirq" => PhysdevGetFreePirq { r#type, pirq }
        // hvm/hvm_op.h, arch-x86/hvm/start_info.h
        "struct xen_hvm_param" => XenHvmParam { domid, pad, index, value }
        "struct hvm_start_info" => HvmStartInfo {
            magic, version, flags, nr_modules, modlist_paddr, cmdline_paddr, rsdp_paddr,
            memmap_paddr, memmap_entries, reserved,
        }
        "struct hvm_modlist_entry" => HvmModlistEntry { paddr, size, cmdline_paddr, reserved }
        "struct hvm_memmap_table_entry" => HvmMemmapTableEntry { addr, size, r#type, reserved }
        // hvm/hvm_vcpu.h
        "struct vcpu_hvm_x86_32" => VcpuHvmX86_32 {
            eax, ecx, edx, ebx, esp, ebp, esi, edi, eip, eflags, cr0, cr3, cr4, pad1, efer,
            cs_base, ds_base, ss_base, es_base, tr_base, cs_limit, ds_limit, ss_limit, es_limit,
            tr_limit, cs_ar, ds_ar, ss_ar, es_ar, tr_ar, pad2,
        }
        "struct vcpu_hvm_x86_64" => VcpuHvmX86_64 {
            rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, rip, rflags, cr0, cr3, cr4, efer,
        }
        member!("struct vcpu_hvm_context", "cpu_regs") => VcpuHvmCpuRegs { x86_32, x86_64 }
        "struct vcpu_hvm_context" => VcpuHvmContext { mode, pad, cpu_regs }
        // hvm/save.h, arch-x86/hvm/save.h
        "struct hvm_save_descriptor" => HvmSaveDescriptor { typecode, instance, length }
        "struct hvm_hw_cpu" => HvmHwCpu { fpu_regs, rax, rbx, rcx, rdx, rbp, rsi, rdi, rsp, r8, r9, r10, r11, r12, r13, r14, r15, rip, rflags, cr0, cr2, cr3, cr4, dr0, dr1, dr2, dr3, dr6, dr7, cs_sel, ds_sel, es_sel, fs_sel, gs_sel, ss_sel, tr_sel, ldtr_sel, cs_limit, ds_limit, es_limit, fs_limit, gs_limit, ss_limit, tr_limit, ldtr_limit, idtr_limit, gdtr_limit, cs_base, ds_base, es_base, fs_base, gs_base, ss_base, tr_base, ldtr_base, idtr_base, gdtr_base, cs_arbytes, ds_arbytes, es_arbytes, fs_arbytes, gs_arbytes, ss_arbytes, tr_arbytes, ldtr_arbytes, sysenter_cs, sysenter_esp, sysenter_eip, shadow_gs, msr_flags, msr_lstar, msr_star, msr_cstar, msr_syscall_mask, msr_efer, msr_tsc_aux, tsc, pending_event, error_code, flags, pad0 }
        "struct hvm_hw_mtrr" => HvmHwMtrr {
            msr_pat_cr, msr_mtrr_var, msr_mtrr_fixed, msr_mtrr_cap, msr_mtrr_def_type,
        }
        // memory.h, XENMEM_set_memory_map
        "struct xen_foreign_memory_map" => ForeignMemoryMap { domid, map }
        // domctl.h
        "struct xen_arch_domainconfig" => XenArchDomainconfig { emulation_flags, misc_flags }
        "struct xen_domctl_createdomain" => XenDomctlCreatedomain {
            ssidref, handle, flags, iommu_opts, max_vcpus, max_evtchn_port, max_grant_frames,
            max_maptrack_frames, grant_opts, vmtrace_size, cpupool_id, arch,
        }
        "struct xen_domctl_getdomaininfo" => XenDomctlGetdomaininfo {
            domain, pad1, flags, tot_pages, max_pages, outstanding_pages, shr_pages, paged_pages,
            shared_info_frame, cpu_time, nr_online_vcpus, max_vcpu_id, ssidref, handle, cpupool,
            gpaddr_bits, pad2, arch_config,
        }
        "struct xen_domctl_max_mem" => XenDomctlMaxMem { max_memkb }
        "struct xen_domctl_vcpucontext" => XenDomctlVcpucontext { vcpu, ctxt }
        "struct xen_domctl_getvcpuinfo" => XenDomctlGetvcpuinfo {
            vcpu, online, blocked, running, cpu_time, cpu,
        }
        "struct xen_domctl_max_vcpus" => XenDomctlMaxVcpus { max }
        "struct xen_domctl_setdomainhandle" => XenDomctlSetdomainhandle { handle }
        "struct xen_domctl_irq_permission" => XenDomctlIrqPermission { pirq, allow_access, pad }
        "struct xen_domctl_iomem_permission" => XenDomctlIomemPermission {
            first_mfn, nr_mfns, allow_access,
        }
        "struct xen_domctl_ioport_permission" => XenDomctlIoportPermission {
            first_port, nr_ports, allow_access,
        }
        "struct xen_domctl_hypercall_init" => XenDomctlHypercallInit { gmfn }
        "struct xen_domctl_settimeoffset" => XenDomctlSettimeoffset { time_offset_seconds }
        "struct xen_domctl_address_size" => XenDomctlAddressSize { size }
        member!("struct xen_domctl_assign_device", "u.pci") => XenDomctlAssignDevicePci {
            machine_sbdf,
        }
        member!("struct xen_domctl_assign_device", "u.dt") => XenDomctlAssignDeviceDt {
            size, path,
        }
        member!("struct xen_domctl_assign_device", "u") => XenDomctlAssignDeviceU { pci, dt }
        "struct xen_domctl_assign_device" => XenDomctlAssignDevice {
            dev, flags, u, "u.pci.machine_sbdf" => u.pci.machine_sbdf,
        }
        member!("struct xen_domctl_bind_pt_irq", "u.isa") => XenDomctlBindPtIrqIsa { isa_irq }
        member!("struct xen_domctl_bind_pt_irq", "u.pci") => XenDomctlBindPtIrqPci {
            bus, device, intx,
        }
        member!("struct xen_domctl_bind_pt_irq", "u.msi") => XenDomctlBindPtIrqMsi {
            gvec, gflags, gtable,
        }
        member!("struct xen_domctl_bind_pt_irq", "u.spi") => XenDomctlBindPtIrqSpi { spi }
        member!("struct xen_domctl_bind_pt_irq", "u") => XenDomctlBindPtIrqU { isa, pci, msi, spi }
        "struct xen_domctl_bind_pt_irq" => XenDomctlBindPtIrq { machine_irq, irq_type, u }
        "struct xen_domctl_memory_mapping" => XenDomctlMemoryMapping {
            first_gfn, first_mfn, nr_mfns, add_mapping, padding,
        }
        "struct xen_domctl_set_target" => XenDomctlSetTarget { target }
        "struct xen_domctl_tsc_info" => XenDomctlTscInfo {
            tsc_mode, gtsc_khz, incarnation, pad, elapsed_nsec,
        }
        "struct xen_domctl_set_virq_handler" => XenDomctlSetVirqHandler { virq }
        "struct xen_domctl_paging_mempool" => XenDomctlPagingMempool { size }
        "struct xen_domctl_hvmcontext" => XenDomctlHvmcontext { size, buffer }
        "struct xen_domctl_sched_credit" => XenDomctlSchedCredit { weight, cap }
        "struct xen_domctl_sched_credit2" => XenDomctlSchedCredit2 { weight, cap }
        member!("struct xen_domctl_scheduler_op", "u") => XenDomctlSchedulerOpU { credit, credit2 }
        "struct xen_domctl_scheduler_op" => XenDomctlSchedulerOp {
            sched_id, cmd, u, "u.credit.weight" => u.credit.weight,
            "u.credit2.cap" => u.credit2.cap,
        }
        member!("struct xen_domctl", "u") => DomctlU {
            createdomain, getdomaininfo, max_mem, vcpucontext, getvcpuinfo, max_vcpus,
            scheduler_op, setdomainhandle, irq_permission, iomem_permission, ioport_permission,
            hypercall_init, settimeoffset, tsc_info, address_size, assign_device, bind_pt_irq, memory_mapping,
            set_target, set_virq_handler, paging_mempool, hvmcontext, pad,
        }
        "struct xen_domctl" => XenDomctl { cmd, interface_version, domain, _pad, u }
        // sysctl.h
        "struct xen_sysctl_readconsole" => XenSysctlReadconsole {
            clear, incremental, pad0, pad1, index, buffer, count,
        }
        "struct xen_sysctl_physinfo" => XenSysctlPhysinfo {
            threads_per_core, cores_per_socket, nr_cpus, max_cpu_id, nr_nodes, max_node_id,
            cpu_khz, capabilities, arch_capabilities, pad, total_pages, free_pages, scrub_pages,
            outstanding_pages, max_mfn, hw_cap,
        }
        "struct xen_sysctl_getdomaininfolist" => XenSysctlGetdomaininfolist {
            first_domain, max_domains, buffer, num_domains,
        }
        "struct xen_sysctl_sched_id" => XenSysctlSchedId { sched_id }
        "struct xen_sysctl_cpuinfo" => XenSysctlCpuinfo { idletime }
        "struct xen_sysctl_getcpuinfo" => XenSysctlGetcpuinfo { max_cpus, info, nr_cpus }
        member!("struct xen_sysctl", "u") => SysctlU {
            readconsole, physinfo, getdomaininfolist, sched_id, getcpuinfo, pad,
        }
        "struct xen_sysctl" => XenSysctl { cmd, interface_version, u }
        // io/console.h, io/xs_wire.h
        "struct xencons_interface" => XenconsInterface {
            r#in, out, in_cons, in_prod, out_cons, out_prod,
        }
        "struct xsd_sockmsg" => XsdSockmsg { r#type, req_id, tx_id, len }
        "struct xenstore_domain_interface" => XenstoreDomainInterface {
            req, rsp, req_cons, req_prod, rsp_cons, rsp_prod, server_features, connection, error,
        }
    }
}

/// Every numeric constant of the crate, by module; the C spelling is found
/// among the headers' macros (see [`c_name`]).
fn const_tables(t: &mut Tables) {
    consts! { t;
    console: [
        CONSOLEIO_WRITE, CONSOLEIO_READ,
    ];
    domctl: [
        XEN_DOMCTL_INTERFACE_VERSION, XEN_DOMCTL_CREATEDOMAIN, XEN_DOMCTL_DESTROYDOMAIN,
        XEN_DOMCTL_PAUSEDOMAIN, XEN_DOMCTL_UNPAUSEDOMAIN, XEN_DOMCTL_GETDOMAININFO,
        XEN_DOMCTL_SETVCPUAFFINITY, XEN_DOMCTL_SHADOW_OP, XEN_DOMCTL_MAX_MEM,
        XEN_DOMCTL_SETVCPUCONTEXT, XEN_DOMCTL_GETVCPUCONTEXT, XEN_DOMCTL_GETVCPUINFO,
        XEN_DOMCTL_MAX_VCPUS, XEN_DOMCTL_SCHEDULER_OP, XEN_DOMCTL_SETDOMAINHANDLE,
        XEN_DOMCTL_SETDEBUGGING, XEN_DOMCTL_IRQ_PERMISSION, XEN_DOMCTL_IOMEM_PERMISSION,
        XEN_DOMCTL_IOPORT_PERMISSION, XEN_DOMCTL_HYPERCALL_INIT, XEN_DOMCTL_SETTIMEOFFSET,
        XEN_DOMCTL_GETVCPUAFFINITY, XEN_DOMCTL_RESUMEDOMAIN, XEN_DOMCTL_SENDTRIGGER,
        XEN_DOMCTL_SUBSCRIBE, XEN_DOMCTL_GETHVMCONTEXT, XEN_DOMCTL_SETHVMCONTEXT,
        XEN_DOMCTL_SET_ADDRESS_SIZE, XEN_DOMCTL_GET_ADDRESS_SIZE, XEN_DOMCTL_ASSIGN_DEVICE,
        XEN_DOMCTL_BIND_PT_IRQ, XEN_DOMCTL_MEMORY_MAPPING, XEN_DOMCTL_IOPORT_MAPPING,
        XEN_DOMCTL_SET_EXT_VCPUCONTEXT, XEN_DOMCTL_GET_EXT_VCPUCONTEXT,
        XEN_DOMCTL_TEST_ASSIGN_DEVICE, XEN_DOMCTL_SET_TARGET, XEN_DOMCTL_DEASSIGN_DEVICE,
        XEN_DOMCTL_UNBIND_PT_IRQ, XEN_DOMCTL_GET_DEVICE_GROUP, XEN_DOMCTL_GETTSCINFO,
        XEN_DOMCTL_SETTSCINFO, XEN_DOMCTL_SET_VIRQ_HANDLER, XEN_DOMCTL_SOFT_RESET,
        XEN_DOMCTL_GET_CPU_POLICY, XEN_DOMCTL_SET_CPU_POLICY,
        XEN_DOMCTL_GET_PAGING_MEMPOOL_SIZE, XEN_DOMCTL_SET_PAGING_MEMPOOL_SIZE,
        XEN_DOMINF_DYING, XEN_DOMINF_HVM_GUEST, XEN_DOMINF_SHUTDOWN, XEN_DOMINF_PAUSED,
        XEN_DOMINF_BLOCKED, XEN_DOMINF_RUNNING, XEN_DOMINF_DEBUGGED, XEN_DOMINF_XS_DOMAIN,
        XEN_DOMINF_HAP, XEN_DOMINF_SHUTDOWNMASK, XEN_DOMINF_SHUTDOWNSHIFT,
        XEN_DOMCTL_CDF_HVM, XEN_DOMCTL_CDF_HAP, XEN_DOMCTL_CDF_S3_INTEGRITY, XEN_DOMCTL_CDF_OOS_OFF, XEN_DOMCTL_CDF_XS_DOMAIN, XEN_DOMCTL_CDF_IOMMU, XEN_DOMCTL_CDF_NESTED_VIRT, XEN_DOMCTL_CDF_VPMU, XEN_DOMCTL_IOMMU_NO_SHAREPT, XEN_DOMCTL_GRANT_VERSION_MASK, XEN_X86_EMU_LAPIC, XEN_X86_EMU_HPET, XEN_X86_EMU_PM, XEN_X86_EMU_RTC, XEN_X86_EMU_IOAPIC, XEN_X86_EMU_PIC, XEN_X86_EMU_VGA, XEN_X86_EMU_IOMMU, XEN_X86_EMU_PIT, XEN_X86_EMU_USE_PIRQ, XEN_X86_EMU_VPCI, XEN_X86_EMU_ALL, XEN_X86_MSR_RELAXED,
    ];
    domctl_payloads: [
        XEN_INVALID_MAX_VCPU_ID, XEN_DOMCTL_DEV_PCI, XEN_DOMCTL_DEV_DT,
        XEN_DOMCTL_DEV_RDM_RELAXED, PT_IRQ_TYPE_PCI, PT_IRQ_TYPE_ISA, PT_IRQ_TYPE_MSI,
        PT_IRQ_TYPE_MSI_TRANSLATE, PT_IRQ_TYPE_SPI, DPCI_ADD_MAPPING, DPCI_REMOVE_MAPPING,
        XEN_SCHEDULER_CREDIT, XEN_SCHEDULER_CREDIT2, XEN_SCHEDULER_ARINC653,
        XEN_SCHEDULER_RTDS, XEN_SCHEDULER_NULL, XEN_DOMCTL_SCHEDOP_PUTINFO,
        XEN_DOMCTL_SCHEDOP_GETINFO, XEN_DOMCTL_SCHEDOP_PUTVCPUINFO,
        XEN_DOMCTL_SCHEDOP_GETVCPUINFO,
    ];
    elfnote: [
        XEN_ELFNOTE_INFO, XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_HYPERCALL_PAGE, XEN_ELFNOTE_VIRT_BASE,
        XEN_ELFNOTE_PADDR_OFFSET, XEN_ELFNOTE_XEN_VERSION, XEN_ELFNOTE_GUEST_OS,
        XEN_ELFNOTE_GUEST_VERSION, XEN_ELFNOTE_LOADER, XEN_ELFNOTE_PAE_MODE,
        XEN_ELFNOTE_FEATURES, XEN_ELFNOTE_BSD_SYMTAB, XEN_ELFNOTE_HV_START_LOW,
        XEN_ELFNOTE_L1_MFN_VALID, XEN_ELFNOTE_SUSPEND_CANCEL, XEN_ELFNOTE_INIT_P2M,
        XEN_ELFNOTE_MOD_START_PFN, XEN_ELFNOTE_SUPPORTED_FEATURES, XEN_ELFNOTE_PHYS32_ENTRY,
        XEN_ELFNOTE_MAX, XEN_ELFNOTE_CRASH_INFO, XEN_ELFNOTE_CRASH_REGS,
        XEN_ELFNOTE_DUMPCORE_NONE, XEN_ELFNOTE_DUMPCORE_HEADER,
        XEN_ELFNOTE_DUMPCORE_XEN_VERSION, XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION,
    ];
    event_channel: [
        EVTCHNOP_BIND_INTERDOMAIN, EVTCHNOP_BIND_VIRQ, EVTCHNOP_BIND_PIRQ, EVTCHNOP_CLOSE,
        EVTCHNOP_SEND, EVTCHNOP_STATUS, EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_IPI,
        EVTCHNOP_BIND_VCPU, EVTCHNOP_UNMASK, EVTCHNOP_RESET, EVTCHNOP_INIT_CONTROL,
        EVTCHNOP_EXPAND_ARRAY, EVTCHNOP_SET_PRIORITY, VIRQ_TIMER, VIRQ_DEBUG, VIRQ_CONSOLE,
        VIRQ_DOM_EXC, VIRQ_TBUF, VIRQ_DEBUGGER, VIRQ_XENOPROF, VIRQ_CON_RING, VIRQ_PCPU_STATE,
        VIRQ_MEM_EVENT, VIRQ_ARGO, VIRQ_ENOMEM, VIRQ_XENPMU, VIRQ_ARCH_0, NR_VIRQS,
        BIND_PIRQ_WILL_SHARE, EVTCHNSTAT_CLOSED, EVTCHNSTAT_UNBOUND, EVTCHNSTAT_INTERDOMAIN,
        EVTCHNSTAT_PIRQ, EVTCHNSTAT_VIRQ, EVTCHNSTAT_IPI, EVTCHN_2L_NR_CHANNELS,
    ];
    grant_table: [
        GNTTABOP_MAP_GRANT_REF, GNTTABOP_UNMAP_GRANT_REF, GNTTABOP_SETUP_TABLE,
        GNTTABOP_DUMP_TABLE, GNTTABOP_TRANSFER, GNTTABOP_COPY, GNTTABOP_QUERY_SIZE,
        GNTTABOP_UNMAP_AND_REPLACE, GNTTABOP_SET_VERSION, GNTTABOP_GET_STATUS_FRAMES,
        GNTTABOP_GET_VERSION, GNTTAB_NR_RESERVED_ENTRIES, GNTTAB_RESERVED_CONSOLE,
        GNTTAB_RESERVED_XENSTORE, GTF_INVALID, GTF_PERMIT_ACCESS, GTF_ACCEPT_TRANSFER,
        GTF_TRANSITIVE, GTF_TYPE_MASK, GTF_READONLY, GTF_READING, GTF_WRITING, GTF_PWT, GTF_PCD,
        GTF_PAT, GTF_SUB_PAGE, GTF_TRANSFER_COMMITTED, GTF_TRANSFER_COMPLETED,
        GNTMAP_DEVICE_MAP, GNTMAP_HOST_MAP, GNTMAP_READONLY, GNTMAP_APPLICATION_MAP,
        GNTMAP_CONTAINS_PTE, GNTCOPY_SOURCE_GREF, GNTCOPY_DEST_GREF, GNTST_OKAY,
        GNTST_GENERAL_ERROR, GNTST_BAD_DOMAIN, GNTST_BAD_GNTREF, GNTST_BAD_HANDLE,
        GNTST_BAD_VIRT_ADDR, GNTST_BAD_DEV_ADDR, GNTST_NO_DEVICE_SPACE, GNTST_PERMISSION_DENIED,
        GNTST_BAD_PAGE, GNTST_BAD_COPY_ARG, GNTST_ADDRESS_TOO_BIG, GNTST_EAGAIN, GNTST_NO_SPACE,
    ];
    hvm: [
        HVMOP_SET_PARAM, HVMOP_GET_PARAM, HVMOP_FLUSH_TLBS, HVMOP_PAGETABLE_DYING,
        HVMOP_GET_TIME, HVMOP_SET_EVTCHN_UPCALL_VECTOR, HVM_PARAM_CALLBACK_IRQ,
        HVM_PARAM_STORE_PFN, HVM_PARAM_STORE_EVTCHN, HVM_PARAM_PAE_ENABLED, HVM_PARAM_IOREQ_PFN,
        HVM_PARAM_BUFIOREQ_PFN, HVM_PARAM_VIRIDIAN, HVM_PARAM_TIMER_MODE,
        HVM_PARAM_HPET_ENABLED, HVM_PARAM_IDENT_PT, HVM_PARAM_DM_DOMAIN, HVM_PARAM_ACPI_S_STATE,
        HVM_PARAM_VM86_TSS, HVM_PARAM_VPT_ALIGN, HVM_PARAM_CONSOLE_PFN,
        HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_ACPI_IOPORTS_LOCATION, HVM_PARAM_NESTEDHVM,
        HVM_PARAM_BUFIOREQ_EVTCHN, HVM_PARAM_PAGING_RING_PFN, HVM_PARAM_MONITOR_RING_PFN,
        HVM_PARAM_SHARING_RING_PFN, HVM_PARAM_TRIPLE_FAULT_REASON, HVM_PARAM_IOREQ_SERVER_PFN,
        HVM_PARAM_NR_IOREQ_SERVER_PAGES, HVM_PARAM_VM_GENERATION_ID_ADDR, HVM_PARAM_ALTP2M,
        HVM_PARAM_X87_FIP_WIDTH, HVM_PARAM_VM86_TSS_SIZED, HVM_PARAM_MCA_CAP, HVM_NR_PARAMS,
        HVM_PARAM_CALLBACK_IRQ_TYPE_MASK, HVM_PARAM_CALLBACK_TYPE_GSI,
        HVM_PARAM_CALLBACK_TYPE_PCI_INTX, HVM_PARAM_CALLBACK_TYPE_VECTOR,
    ];
    hvm_vcpu: [VCPU_HVM_MODE_32B, VCPU_HVM_MODE_64B];
    hvm_save: [
        HVM_SAVE_CODE_END, HVM_SAVE_CODE_HEADER, HVM_SAVE_CODE_CPU, HVM_SAVE_CODE_MTRR,
    ];
    hvm_start_info: [
        XEN_HVM_START_MAGIC_VALUE, XEN_HVM_MEMMAP_TYPE_RAM, XEN_HVM_MEMMAP_TYPE_RESERVED,
        XEN_HVM_MEMMAP_TYPE_ACPI, XEN_HVM_MEMMAP_TYPE_NVS, XEN_HVM_MEMMAP_TYPE_UNUSABLE,
        XEN_HVM_MEMMAP_TYPE_DISABLED, XEN_HVM_MEMMAP_TYPE_PMEM,
    ];
    hypercall: [
        SET_TRAP_TABLE, MMU_UPDATE, SET_GDT, STACK_SWITCH, SET_CALLBACKS, FPU_TASKSWITCH,
        PLATFORM_OP, MEMORY_OP, MULTICALL, UPDATE_VA_MAPPING, SET_TIMER_OP, XEN_VERSION,
        CONSOLE_IO, GRANT_TABLE_OP, VM_ASSIST, UPDATE_VA_MAPPING_OTHERDOMAIN, IRET, VCPU_OP,
        SET_SEGMENT_BASE, MMUEXT_OP, XSM_OP, NMI_OP, SCHED_OP, CALLBACK_OP, EVENT_CHANNEL_OP,
        PHYSDEV_OP, HVM_OP, SYSCTL, DOMCTL, DM_OP,
    ];
    io::console: [
        XENCONS_IN_SIZE, XENCONS_OUT_SIZE,
    ];
    io::xs_wire: [
        XS_CONTROL, XS_DIRECTORY, XS_READ, XS_GET_PERMS, XS_WATCH, XS_UNWATCH,
        XS_TRANSACTION_START, XS_TRANSACTION_END, XS_INTRODUCE, XS_RELEASE, XS_GET_DOMAIN_PATH,
        XS_WRITE, XS_MKDIR, XS_RM, XS_SET_PERMS, XS_WATCH_EVENT, XS_ERROR,
        XS_IS_DOMAIN_INTRODUCED, XS_RESUME, XS_SET_TARGET, XS_RESET_WATCHES, XS_DIRECTORY_PART,
        XS_TYPE_COUNT, XS_INVALID, XS_WATCH_PATH, XS_WATCH_TOKEN, XENSTORE_RING_SIZE,
        XENSTORE_PAYLOAD_MAX, XENSTORE_ABS_PATH_MAX, XENSTORE_REL_PATH_MAX,
        XENSTORE_SERVER_FEATURE_RECONNECTION, XENSTORE_SERVER_FEATURE_ERROR, XENSTORE_CONNECTED,
        XENSTORE_RECONNECT, XENSTORE_ERROR_NONE, XENSTORE_ERROR_COMM, XENSTORE_ERROR_RINGIDX,
        XENSTORE_ERROR_PROTO, XSD_SOCKMSG_SIZE,
    ];
    memory: [
        XENMEM_INCREASE_RESERVATION, XENMEM_DECREASE_RESERVATION, XENMEM_MAXIMUM_RAM_PAGE,
        XENMEM_CURRENT_RESERVATION, XENMEM_MAXIMUM_RESERVATION, XENMEM_POPULATE_PHYSMAP,
        XENMEM_ADD_TO_PHYSMAP, XENMEM_MEMORY_MAP, XENMEM_MACHINE_MEMORY_MAP, XENMEM_EXCHANGE,
        XENMEM_SET_MEMORY_MAP, XENMEM_MAXIMUM_GPFN, XENMEM_REMOVE_FROM_PHYSMAP,
        XENMAPSPACE_SHARED_INFO, XENMAPSPACE_GRANT_TABLE, XENMAPSPACE_GMFN,
        XENMAPSPACE_GMFN_RANGE, XENMAPSPACE_GMFN_FOREIGN,
    ];
    physdev: [
        PHYSDEVOP_IRQ_UNMASK_NOTIFY, PHYSDEVOP_IRQ_STATUS_QUERY, PHYSDEVOP_SET_IOPL,
        PHYSDEVOP_SET_IOBITMAP, PHYSDEVOP_APIC_READ, PHYSDEVOP_APIC_WRITE,
        PHYSDEVOP_ALLOC_IRQ_VECTOR, PHYSDEVOP_FREE_IRQ_VECTOR, PHYSDEVOP_EOI,
        PHYSDEVOP_MAP_PIRQ, PHYSDEVOP_UNMAP_PIRQ, PHYSDEVOP_MANAGE_PCI_ADD,
        PHYSDEVOP_MANAGE_PCI_REMOVE, PHYSDEVOP_PIRQ_EOI_GMFN_V1, PHYSDEVOP_RESTORE_MSI,
        PHYSDEVOP_MANAGE_PCI_ADD_EXT, PHYSDEVOP_SETUP_GSI, PHYSDEVOP_GET_FREE_PIRQ,
        PHYSDEVOP_PCI_MMCFG_RESERVED, PHYSDEVOP_PCI_DEVICE_ADD, PHYSDEVOP_PCI_DEVICE_REMOVE,
        PHYSDEVOP_RESTORE_MSI_EXT, PHYSDEVOP_PIRQ_EOI_GMFN_V2, PHYSDEVOP_DBGP_OP,
        PHYSDEVOP_PREPARE_MSIX, PHYSDEVOP_RELEASE_MSIX, XENIRQSTAT_NEEDS_EOI, XENIRQSTAT_SHARED,
        MAP_PIRQ_TYPE_MSI, MAP_PIRQ_TYPE_GSI, MAP_PIRQ_TYPE_UNKNOWN, MAP_PIRQ_TYPE_MSI_SEG,
        MAP_PIRQ_TYPE_MULTI_MSI, XEN_PCI_DEV_EXTFN, XEN_PCI_DEV_VIRTFN, XEN_PCI_DEV_PXM,
        XEN_PCI_MMCFG_RESERVED,
    ];
    sched: [
        SCHEDOP_YIELD, SCHEDOP_BLOCK, SCHEDOP_SHUTDOWN, SCHEDOP_POLL, SCHEDOP_REMOTE_SHUTDOWN,
        SCHEDOP_SHUTDOWN_CODE, SCHEDOP_WATCHDOG, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT,
        SHUTDOWN_SUSPEND, SHUTDOWN_CRASH, SHUTDOWN_WATCHDOG, SHUTDOWN_SOFT_RESET,
    ];
    sysctl: [
        XEN_SYSCTL_INTERFACE_VERSION, XEN_SYSCTL_READCONSOLE, XEN_SYSCTL_TBUF_OP,
        XEN_SYSCTL_PHYSINFO, XEN_SYSCTL_SCHED_ID, XEN_SYSCTL_PERFC_OP,
        XEN_SYSCTL_GETDOMAININFOLIST, XEN_SYSCTL_DEBUG_KEYS, XEN_SYSCTL_GETCPUINFO,
        XEN_SYSCTL_AVAILHEAP, XEN_SYSCTL_CPUTOPOINFO, XEN_SYSCTL_NUMAINFO,
        XEN_SYSCTL_CPUPOOL_OP, XEN_SYSCTL_SCHEDULER_OP, XEN_SYSCTL_PCITOPOINFO,
        XEN_SYSCTL_GET_CPU_FEATURESET, XEN_SYSCTL_GET_CPU_POLICY, XEN_SYSCTL_PHYSCAP_HVM,
        XEN_SYSCTL_PHYSCAP_PV, XEN_SYSCTL_PHYSCAP_DIRECTIO, XEN_SYSCTL_PHYSCAP_HAP,
        XEN_SYSCTL_PHYSCAP_SHADOW, XEN_SYSCTL_PHYSCAP_IOMMU_HAP_PT_SHARE,
        XEN_SYSCTL_PHYSCAP_VMTRACE, XEN_SYSCTL_PHYSCAP_VPMU, XEN_SYSCTL_PHYSCAP_GNTTAB_V1,
        XEN_SYSCTL_PHYSCAP_GNTTAB_V2,
    ];
    vcpu: [
        VCPUOP_INITIALISE, VCPUOP_UP, VCPUOP_DOWN, VCPUOP_IS_UP, VCPUOP_GET_RUNSTATE_INFO,
        VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, VCPUOP_SET_PERIODIC_TIMER,
        VCPUOP_STOP_PERIODIC_TIMER, VCPUOP_SET_SINGLESHOT_TIMER, VCPUOP_STOP_SINGLESHOT_TIMER,
        VCPUOP_REGISTER_VCPU_INFO, VCPUOP_SEND_NMI, VCPUOP_GET_PHYSID,
        VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA, RUNSTATE_RUNNING, RUNSTATE_RUNNABLE,
        RUNSTATE_BLOCKED, RUNSTATE_OFFLINE, XEN_RUNSTATE_UPDATE, VCPU_SSHOTTMR_FUTURE,
        VGCF_I387_VALID, VGCF_IN_KERNEL, VGCF_FAILSAFE_DISABLES_EVENTS,
        VGCF_SYSCALL_DISABLES_EVENTS, VGCF_ONLINE, VGCF_IN_SYSCALL, FLAT_KERNEL_CS64,
        FLAT_KERNEL_SS64, FLAT_KERNEL_DS64,
    ];
    version: [
        XENVER_VERSION, XENVER_EXTRAVERSION, XENVER_COMPILE_INFO, XENVER_CAPABILITIES,
        XENVER_CHANGESET, XENVER_PLATFORM_PARAMETERS, XENVER_GET_FEATURES, XENVER_PAGESIZE,
        XENVER_COMMANDLINE, XENFEAT_DOM0,
    ];
    xen: [
        DOMID_SELF, DOMID_IO, DOMID_XEN, DOMID_INVALID, DOMID_FIRST_RESERVED,
        HYPERVISOR_VIRT_START, HYPERVISOR_VIRT_END, MACH2PHYS_VIRT_START, MACH2PHYS_VIRT_END,
        XEN_LEGACY_MAX_VCPUS, MAX_GUEST_CMDLINE, SIF_PRIVILEGED, SIF_INITDOMAIN,
        SIF_MULTIBOOT_MOD, SIF_MOD_START_PFN, SIF_VIRT_P2M_4TOOLS, MMU_NORMAL_PT_UPDATE,
        MMU_MACHPHYS_UPDATE, MMU_PT_UPDATE_PRESERVE_AD, MMU_PT_UPDATE_NO_TRANSLATE,
        MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE, MMUEXT_PIN_L4_TABLE,
        MMUEXT_UNPIN_TABLE, MMUEXT_NEW_BASEPTR, MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_INVLPG_LOCAL,
        MMUEXT_TLB_FLUSH_ALL, MMUEXT_INVLPG_ALL, MMUEXT_NEW_USER_BASEPTR, MMUEXT_CLEAR_PAGE,
        MMUEXT_COPY_PAGE, UVMF_NONE, UVMF_TLB_FLUSH, UVMF_INVLPG, UVMF_ALL,
    ];
    }
    // `Errno` mirrors errno.h's `enum xen_errno` (XEN_EPERM, ...).
    for (name, errno) in [
        ("EPERM", xen_sys::Errno::EPERM),
        ("ENOENT", xen_sys::Errno::ENOENT),
        ("ESRCH", xen_sys::Errno::ESRCH),
        ("EAGAIN", xen_sys::Errno::EAGAIN),
        ("ENOMEM", xen_sys::Errno::ENOMEM),
        ("EFAULT", xen_sys::Errno::EFAULT),
        ("EBUSY", xen_sys::Errno::EBUSY),
        ("EEXIST", xen_sys::Errno::EEXIST),
        ("EINVAL", xen_sys::Errno::EINVAL),
        ("ENOSPC", xen_sys::Errno::ENOSPC),
        ("ENOSYS", xen_sys::Errno::ENOSYS),
    ] {
        t.consts.insert(format!("hypercall::{name}"));
        t.push(format!("errno {name}"), format!("XEN_{name}"), errno.0);
    }
    // String constants: compared byte by byte through their lengths and a strcmp.
    for (module, name, value) in [
        ("io::xs_wire", "XS_WRITE_NONE", XS_WRITE_NONE),
        ("io::xs_wire", "XS_WRITE_CREATE", XS_WRITE_CREATE),
        ("io::xs_wire", "XS_WRITE_CREATE_EXCL", XS_WRITE_CREATE_EXCL),
    ] {
        t.consts.insert(format!("{module}::{name}"));
        t.push(
            format!("string {name} length"),
            format!("(sizeof({name}) - 1)"),
            value.len() as i64,
        );
        t.push(
            format!("string {name} equal"),
            format!("strcmp({name}, {})", c_string(value)),
            0,
        );
    }
    // `xsd_errors[]`: the same names in the same order.
    t.push(
        "xsd_errors count".to_string(),
        "(sizeof(xsd_errors) / sizeof(xsd_errors[0]))".to_string(),
        XSD_ERRORS.len() as i64,
    );
    for (i, name) in XSD_ERRORS.iter().enumerate() {
        t.push(
            format!("xsd_errors[{i}]"),
            format!("strcmp(xsd_errors[{i}].errstring, {})", c_string(name)),
            0,
        );
    }
}

/// Constants with no C macro of their own, each with the reason.
const CONST_EXEMPT: &[(&str, &str)] = &[
    (
        "hvm_save::CS",
        "an index into hvm_hw_cpu's segment runs, not a C constant",
    ),
    (
        "hvm_save::DS",
        "an index into hvm_hw_cpu's segment runs, not a C constant",
    ),
    (
        "hvm_save::ES",
        "an index into hvm_hw_cpu's segment runs, not a C constant",
    ),
    (
        "hvm_save::FS",
        "an index into hvm_hw_cpu's segment runs, not a C constant",
    ),
    (
        "hvm_save::GS",
        "an index into hvm_hw_cpu's segment runs, not a C constant",
    ),
    (
        "hvm_save::SS",
        "an index into hvm_hw_cpu's segment runs, not a C constant",
    ),
    (
        "hvm_save::TR",
        "an index into hvm_hw_cpu's segment runs, not a C constant",
    ),
    (
        "hvm_save::LDTR",
        "an index into hvm_hw_cpu's segment runs, not a C constant",
    ),
    (
        "hvm_save::X86_DR6_DEFAULT",
        "DR6's architectural reset value (Xen's x86-defns.h, not a public header)",
    ),
    (
        "hvm_save::X86_DR7_DEFAULT",
        "DR7's architectural reset value (Xen's x86-defns.h, not a public header)",
    ),
    (
        "hvm_save::MTRR_TYPE_WRBACK",
        "the SDM's MTRR memory type; not a macro of the public headers",
    ),
    (
        "hvm_save::MTRR_DEF_TYPE_ENABLE",
        "the SDM's IA32_MTRR_DEF_TYPE.E bit; not a macro of the public headers",
    ),
    (
        "lib::PAGE_SHIFT",
        "x86 page size; not a macro of the public headers",
    ),
    (
        "lib::PAGE_SIZE",
        "x86 page size; not a macro of the public headers",
    ),
    (
        "io::xs_wire::XS_GET_FEATURE",
        "Xen 4.18 xs_wire.h; absent from the 4.17 headers",
    ),
    (
        "io::xs_wire::XS_SET_FEATURE",
        "Xen 4.18 xs_wire.h; absent from the 4.17 headers",
    ),
    (
        "io::xs_wire::XS_GET_QUOTA",
        "Xen 4.18 xs_wire.h; absent from the 4.17 headers",
    ),
    (
        "io::xs_wire::XS_SET_QUOTA",
        "Xen 4.18 xs_wire.h; absent from the 4.17 headers",
    ),
    (
        "io::xs_wire::XSD_ERRORS",
        "strings of xsd_errors[]; compared element by element below",
    ),
    (
        "io::xs_wire::XS_PERM_NONE",
        "permission letter of docs/misc/xenstore.txt, not a macro",
    ),
    (
        "io::xs_wire::XS_PERM_READ",
        "permission letter of docs/misc/xenstore.txt, not a macro",
    ),
    (
        "io::xs_wire::XS_PERM_WRITE",
        "permission letter of docs/misc/xenstore.txt, not a macro",
    ),
    (
        "io::xs_wire::XS_PERM_BOTH",
        "permission letter of docs/misc/xenstore.txt, not a macro",
    ),
    (
        "xen::START_INFO_MAGIC_PREFIX",
        "documented text of start_info.magic, not a macro",
    ),
    (
        "elfnote::XEN_ELFNOTE_OWNER",
        "note owner name from elfnote.h's prose, not a macro",
    ),
    (
        "xen::PTE_PRESENT",
        "x86 page-table bit (Intel SDM), not in Xen's headers",
    ),
    (
        "xen::PTE_RW",
        "x86 page-table bit (Intel SDM), not in Xen's headers",
    ),
    (
        "xen::PTE_USER",
        "x86 page-table bit (Intel SDM), not in Xen's headers",
    ),
    (
        "xen::PTE_ACCESSED",
        "x86 page-table bit (Intel SDM), not in Xen's headers",
    ),
    (
        "xen::PTE_DIRTY",
        "x86 page-table bit (Intel SDM), not in Xen's headers",
    ),
    (
        "xen::PTE_NX",
        "x86 page-table bit (Intel SDM), not in Xen's headers",
    ),
    (
        "xen::PTE_ADDR_MASK",
        "x86 page-table frame mask (Intel SDM), not in Xen's headers",
    ),
];

/// Types that are not C layouts, each with the reason.
const TYPE_EXEMPT: &[(&str, &str)] = &[("Errno", "a Rust error value, not a C structure")];

/// C spellings that are not the Rust name in another case.
const C_RENAMES: &[(&str, &str)] = &[
    ("BIND_PIRQ_WILL_SHARE", "BIND_PIRQ__WILL_SHARE"),
    (
        "XENCONS_IN_SIZE",
        "sizeof(((struct xencons_interface *)0)->in)",
    ),
    (
        "XENCONS_OUT_SIZE",
        "sizeof(((struct xencons_interface *)0)->out)",
    ),
    ("XSD_SOCKMSG_SIZE", "sizeof(struct xsd_sockmsg)"),
];

fn c_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The C expression for Rust constant `name` (module `module`): the macro
/// whose name matches case-insensitively (also with `__HYPERVISOR_` in front
/// for hypercall numbers), a rename, or the name itself (enum constants such
/// as `XS_READ`, which `cc -dM` does not list; a wrong one fails to compile).
fn c_name(module: &str, name: &str, macros: &BTreeMap<String, Vec<String>>) -> String {
    if let Some((_, c)) = C_RENAMES.iter().find(|(r, _)| *r == name) {
        return (*c).to_string();
    }
    let mut keys = vec![name.to_uppercase()];
    if module == "hypercall" {
        keys.insert(0, format!("__HYPERVISOR_{name}"));
    }
    for key in keys {
        if let Some(found) = macros.get(&key) {
            // Prefer the header's own (mixed-case) spelling over an
            // upper-case compatibility alias.
            let pick = found.iter().find(|m| **m != key).unwrap_or(&found[0]);
            return pick.clone();
        }
    }
    name.to_string()
}

const INCLUDES: &[&str] = &[
    "xen/xen.h",
    "xen/xen-compat.h",
    "xen/errno.h",
    "xen/features.h",
    "xen/event_channel.h",
    "xen/grant_table.h",
    "xen/vcpu.h",
    "xen/physdev.h",
    "xen/memory.h",
    "xen/sched.h",
    "xen/version.h",
    "xen/elfnote.h",
    "xen/hvm/hvm_op.h",
    "xen/hvm/params.h",
    "xen/hvm/e820.h",
    "xen/arch-x86/hvm/start_info.h",
    "xen/hvm/hvm_vcpu.h",
    "xen/hvm/save.h",
    "xen/domctl.h",
    "xen/sysctl.h",
    "xen/io/console.h",
    // errno.h first: xs_wire.h defines `xsd_errors[]` only when EINVAL is.
    "errno.h",
    "xen/io/xs_wire.h",
];

/// C definitions the headers only describe in prose, each citing its source.
const C_LOCAL_DEFS: &str = "
/* memory.h, XENMEM_memory_map: entries are in the format of BIOS INT 0x15
 * EAX=0xE820 (ACPI 6.x, 15.1 'INT 15H, E820H'): base, length, type, packed. */
struct bios_e820_entry { uint64_t addr; uint64_t size; uint32_t type; } __attribute__((packed));
/* hvm/save.h: HVM_SAVE_CODE(x) is a sizeof expression; named here. */
#define HVM_SAVE_CODE_END HVM_SAVE_CODE(END)
#define HVM_SAVE_CODE_HEADER HVM_SAVE_CODE(HEADER)
#define HVM_SAVE_CODE_CPU HVM_SAVE_CODE(CPU)
#define HVM_SAVE_CODE_MTRR HVM_SAVE_CODE(MTRR)
";

fn include_dir() -> PathBuf {
    let dir = PathBuf::from(
        std::env::var("XEN_INCLUDE_DIR").unwrap_or_else(|_| DEFAULT_INCLUDE_DIR.to_string()),
    );
    for header in INCLUDES {
        assert!(
            dir.join(header).is_file(),
            "{} is missing: the Xen 4.17 public headers are needed for this test \
             (run `apt-get install libxen-dev`, or set XEN_INCLUDE_DIR)",
            dir.join(header).display()
        );
    }
    dir
}

fn prelude() -> String {
    let mut c = String::from(
        "#include <stddef.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <string.h>\n",
    );
    for header in INCLUDES {
        writeln!(c, "#include <{header}>").unwrap();
    }
    c.push_str(C_LOCAL_DEFS);
    c
}

fn cc(work: &Path, include: &Path, source: &Path, extra: &[&str]) -> std::process::Output {
    let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".to_string()))
        .current_dir(work)
        .arg("-std=gnu11")
        .arg("-Wall")
        .arg("-D__XEN_TOOLS__")
        .arg(format!(
            "-D__XEN_INTERFACE_VERSION__={XEN_INTERFACE_VERSION}"
        ))
        .arg("-I")
        .arg(include)
        .args(extra)
        .arg(source)
        .output()
        .expect("cannot run `cc`: a C compiler is needed for this test (apt-get install gcc)");
    assert!(
        out.status.success(),
        "cc failed on {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Names of every object-like macro the headers define, keyed by upper case.
fn header_macros(work: &Path, include: &Path) -> BTreeMap<String, Vec<String>> {
    let source = work.join("macros.c");
    std::fs::write(&source, prelude()).unwrap();
    let out = cc(work, include, &source, &["-E", "-dM"]);
    let mut macros: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(rest) = line.strip_prefix("#define ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if rest[name.len()..].starts_with('(') {
            continue; // function-like
        }
        macros.entry(name.to_uppercase()).or_default().push(name);
    }
    macros
}

/// Fields that exist only on the Rust side, each with the reason.
const FIELD_EXEMPT: &[(&str, &str, &str)] = &[
    (
        "XenDomctlHvmcontext",
        "pad",
        "explicit form of the padding C inserts before the 8-byte-aligned handle",
    ),
    (
        "VcpuInfo",
        "pad0",
        "explicit form of the padding C inserts before evtchn_pending_sel",
    ),
    (
        "MmuextOp",
        "pad",
        "explicit form of the padding C inserts before arg1",
    ),
    (
        "DomctlU",
        "align",
        "forces the union's 8-byte alignment; C gets it from its members",
    ),
    (
        "XenDomctlSchedulerOpU",
        "pad",
        "the rtds and per-vCPU members, as bytes: sizes and alignment match C's",
    ),
    (
        "SysctlU",
        "align",
        "forces the union's 8-byte alignment; C gets it from its members",
    ),
    (
        "PhysdevPciDeviceAdd",
        "optarr",
        "C flexible array member; its offset is the size",
    ),
];

/// What `src/` declares: `pub struct`/`pub union` names, their `pub` fields
/// as (type, field), and `pub const` names as `module::NAME`.
struct Declared {
    types: BTreeSet<String>,
    fields: BTreeSet<(String, String)>,
    consts: BTreeSet<String>,
}

fn ident(rest: &str) -> String {
    rest.trim_start_matches("r#")
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

fn declared_items() -> Declared {
    let mut declared = Declared {
        types: BTreeSet::new(),
        fields: BTreeSet::new(),
        consts: BTreeSet::new(),
    };
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for src in [here.join("src"), here.join("../xen-abi/src")] {
        declare_dir(&src, &mut declared);
    }
    declared
}

fn declare_dir(src: &Path, declared: &mut Declared) {
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let module = rel.to_string_lossy().replace('/', "::");
            let text = std::fs::read_to_string(&path).unwrap();
            // Items after `#[cfg(test)]` are test helpers, not the ABI.
            let text = text.split("#[cfg(test)]").next().unwrap();
            // The struct or union whose body we are in (bodies end with a
            // `}` in column 0, as rustfmt writes them).
            let mut current: Option<String> = None;
            for raw in text.lines() {
                if raw.starts_with('}') {
                    current = None;
                }
                let line = raw.trim_start();
                let decl = line
                    .strip_prefix("pub struct ")
                    .or(line.strip_prefix("pub union "));
                if let Some(rest) = decl {
                    declared.types.insert(ident(rest));
                    current = rest.trim_end().ends_with('{').then(|| ident(rest));
                } else if let Some(rest) = line.strip_prefix("pub const ") {
                    if !rest.starts_with("fn ") {
                        declared.consts.insert(format!("{module}::{}", ident(rest)));
                    }
                } else if let (Some(ty), Some(rest)) = (&current, line.strip_prefix("pub ")) {
                    if rest.contains(':') {
                        declared.fields.insert((ty.clone(), ident(rest)));
                    }
                }
            }
        }
    }
}

/// The C side is compiled for the host, and only an x86_64 host has the ABI
/// this crate implements: elsewhere, fail rather than compare the wrong ABI.
#[cfg(not(target_arch = "x86_64"))]
#[test]
fn host_is_x86_64() {
    panic!("run the ABI layout test on an x86_64 host: it compares with the host's C layout");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn every_struct_and_constant_matches_the_c_headers() {
    let include = include_dir();
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("abi_layout");
    std::fs::create_dir_all(&work).unwrap();

    let mut tables = Tables::new();
    layout_tables(&mut tables);
    const_tables(&mut tables);

    // Completeness: nothing declared goes unchecked without a reason.
    let declared = declared_items();
    let unchecked_types: Vec<_> = declared
        .types
        .iter()
        .filter(|t| !tables.types.contains(t.as_str()))
        .filter(|t| !TYPE_EXEMPT.iter().any(|(e, _)| e == t))
        .collect();
    assert!(
        unchecked_types.is_empty(),
        "types not in the layout tables: {unchecked_types:?}"
    );
    let unchecked_fields: Vec<_> = declared
        .fields
        .iter()
        .filter(|(ty, _)| !TYPE_EXEMPT.iter().any(|(e, _)| e == ty))
        .filter(|f| !tables.fields.contains(*f))
        .filter(|(ty, f)| !FIELD_EXEMPT.iter().any(|(et, ef, _)| et == ty && ef == f))
        .collect();
    assert!(
        unchecked_fields.is_empty(),
        "fields not in the layout tables: {unchecked_fields:?}"
    );
    let unchecked_consts: Vec<_> = declared
        .consts
        .iter()
        .filter(|c| !tables.consts.contains(*c))
        .filter(|c| !CONST_EXEMPT.iter().any(|(e, _)| e == c))
        // `OFF_*` are offset_of!/size_of of a layout the tables check.
        .filter(|c| !c.rsplit("::").next().unwrap().starts_with("OFF_"))
        .collect();
    assert!(
        unchecked_consts.is_empty(),
        "constants not in the tables: {unchecked_consts:?}"
    );

    // Resolve constant names to their C spelling.
    let macros = header_macros(&work, &include);
    for check in &mut tables.checks {
        if let Some(path) = check.key.strip_prefix("const ") {
            let (module, name) = path.rsplit_once("::").unwrap();
            check.c_expr = c_name(module, name, &macros);
        }
    }

    // Generate, build and run the C side.
    let mut c = prelude();
    c.push_str("int main(void)\n{\n");
    for (i, check) in tables.checks.iter().enumerate() {
        writeln!(
            c,
            "    printf(\"{i} %lld\\n\", (long long)({}));",
            check.c_expr
        )
        .unwrap();
    }
    c.push_str("    return 0;\n}\n");
    let source = work.join("layout.c");
    let binary = work.join("layout");
    std::fs::write(&source, &c).unwrap();
    cc(&work, &include, &source, &["-o", binary.to_str().unwrap()]);
    let run = Command::new(&binary)
        .output()
        .expect("run the generated C program");
    assert!(run.status.success(), "{} failed", binary.display());

    let stdout = String::from_utf8(run.stdout).unwrap();
    let c_values: BTreeMap<usize, i64> = stdout
        .lines()
        .map(|line| {
            let (i, v) = line.split_once(' ').expect("`index value` lines");
            (i.parse().unwrap(), v.parse().unwrap())
        })
        .collect();
    assert_eq!(
        c_values.len(),
        tables.checks.len(),
        "the C program printed every check"
    );

    let mismatches: Vec<String> = tables
        .checks
        .iter()
        .enumerate()
        .filter(|(i, check)| c_values[i] != check.rust)
        .map(|(i, check)| {
            format!(
                "{}: C `{}` = {}, Rust = {}",
                check.key, check.c_expr, c_values[&i], check.rust
            )
        })
        .collect();
    let kinds = |suffix: &str| {
        tables
            .checks
            .iter()
            .filter(|c| c.key.ends_with(suffix))
            .count()
    };
    eprintln!(
        "abi_layout: {} checks: {} C types ({} Rust types), {} field offsets and sizes \
         ({} Rust fields), {} constants; generated C in {}",
        tables.checks.len(),
        kinds(") size"),
        tables.types.len(),
        kinds(" offset"),
        tables.fields.len(),
        tables.consts.len(),
        source.display(),
    );
    assert!(
        mismatches.is_empty(),
        "{} ABI mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
