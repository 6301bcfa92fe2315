//! VM power operations through the [`Hypervisor`] trait, with xapi's power
//! state rules and `allowed_operations`.
//!
//! | operation      | from                       | to      |
//! |----------------|----------------------------|---------|
//! | start          | Halted                     | Running (Paused if start_paused) |
//! | clean_shutdown | Running                    | Halted  |
//! | hard_shutdown  | Running, Paused, Suspended | Halted  |
//! | clean_reboot   | Running                    | Running |
//! | hard_reboot    | Running, Paused            | Running |
//! | pause          | Running                    | Paused  |
//! | unpause        | Paused                     | Running |
//!
//! A wrong state is `VM_BAD_POWER_STATE [vm, expected, actual]` (lower-case
//! states); templates get VM_IS_TEMPLATE; the control domain is refused.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::dispatch::{arg_str, handle_invalid};
use crate::engine::Engine;
use crate::engine::Outcome;
use crate::error::*;
use crate::hypervisor::{BuildStep, DomainSpec, Hypervisor, HypervisorError, ShutdownReason};
use crate::rng::Entropy;
use crate::schema::{class, class_id, ClassId};
use crate::value::{format_datetime, Instant, Value, NULL_REF};
use crate::wal::Storage;

/// How long a guest has to acknowledge a clean shutdown or reboot (clear
/// `control/shutdown`), ms: xenopsd's default wait for the ack.
pub const CLEAN_ACK_MS: u64 = 30_000;
/// The internal answer of a start whose domain build goes on: the call
/// parks (`dispatch.rs`) and is run again. Never sent to a client.
pub(crate) const BUILD_PENDING: &str = "XCP_BUILD_PENDING";
/// How long a start parked on its build waits before it is run again at
/// the latest, ms (the board runs it on its next pass, sooner).
pub(crate) const BUILD_PARK_MS: u64 = 10;
/// A build in progress not carried on for this long was given up by its
/// caller (a connection gone, a task cancelled): it is undone, ms.
pub const BUILD_STALE_MS: u64 = 5_000;

/// The VM start whose domain is being built a step at a time.
#[derive(Clone, Debug)]
pub(crate) struct Building {
    /// The VM.
    pub(crate) vm: String,
    /// Its uuid (the hypervisor's name for the build).
    pub(crate) uuid: String,
    /// The start call (`Engine::current_call`): only it carries it on.
    pub(crate) call: String,
    /// The last step.
    pub(crate) last_step: Instant,
}
/// How long a guest that acknowledged has to stop, ms (xapi's default
/// clean shutdown timeout, 1200 s).
pub const CLEAN_TIMEOUT_MS: u64 = 1_200_000;

/// A clean shutdown or reboot asked of a guest through `control/shutdown`,
/// whose call is parked until the guest stops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanRequest {
    /// The domain asked.
    pub domid: u32,
    /// What it was asked.
    pub reason: ShutdownReason,
    /// When the call was first made (the parked call's `started`).
    pub since: Instant,
    /// It cleared `control/shutdown`.
    pub acked: bool,
    /// The domain stopped and the stop was handled (Halted, or rebooted):
    /// the call answers success.
    pub done: bool,
}

/// What Xen needs for a domain beyond its RAM, bytes (as xapi's
/// `memory_overhead`, roughly): the paging pool a PVH guest gets (1 MiB per
/// vCPU and 8 KiB per MiB of RAM, `xcp_dom0_board::pvh`), its ACPI and
/// special pages, and 1 MiB of slack for page tables and Xen's own
/// structures.
pub fn domain_overhead(spec: &DomainSpec) -> u64 {
    let mib = spec.memory.div_ceil(1 << 20);
    u64::from(spec.vcpus) * (1 << 20) + mib * 8 * 1024 + (1 << 20)
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    /// [`Engine::refresh_host_memory`] and commit (the board's periodic
    /// look at the host: Xen frees a destroyed domain's memory as its last
    /// references go, after the destroy call).
    pub fn sync_host_memory(&mut self, now: Instant) -> Result<bool, ApiError> {
        if self.poisoned {
            return Ok(false);
        }
        self.now = now;
        if !self.refresh_host_memory() {
            return Ok(false);
        }
        self.commit()?;
        Ok(true)
    }

    /// Re-reads the host's memory from the hypervisor into host_metrics
    /// (only when it changed, so an idle host writes nothing); whether it
    /// changed. The caller commits.
    pub fn refresh_host_memory(&mut self) -> bool {
        let Some((total, free)) = self.hv.host_memory() else {
            return false;
        };
        let hc = class_id("host").expect("schema has host");
        let mc = class_id("host_metrics").expect("schema has host_metrics");
        let host = self.host_ref();
        let Some(m) = self
            .db
            .field(hc, &host, "metrics")
            .and_then(Value::as_str)
            .map(ToString::to_string)
        else {
            return false;
        };
        let (total, free) = (total as i64, free as i64);
        let now_total = self
            .db
            .field(mc, &m, "memory_total")
            .and_then(Value::as_int);
        let now_free = self.db.field(mc, &m, "memory_free").and_then(Value::as_int);
        if now_total == Some(total) && now_free == Some(free) {
            return false;
        }
        self.db.set_named(mc, &m, "memory_total", Value::Int(total));
        self.db.set_named(mc, &m, "memory_free", Value::Int(free));
        self.db.set_named(
            mc,
            &m,
            "last_updated",
            Value::DateTime(format_datetime(self.now)),
        );
        true
    }
}

pub(crate) fn vm_class() -> ClassId {
    class_id("VM").expect("schema has VM")
}

pub(crate) fn hv_err(e: HypervisorError) -> ApiError {
    ApiError {
        code: INTERNAL_ERROR,
        params: alloc::vec![e.0],
    }
}

/// The operations allowed in a power state.
pub fn allowed_in(state: &str, template: bool, control_domain: bool) -> &'static [&'static str] {
    if control_domain {
        return &[];
    }
    if template {
        return &["clone", "copy", "provision", "destroy"];
    }
    match state {
        // As xapi lists them, for the calls implemented
        // (tests/allowed_operations.rs calls each).
        "Halted" => &[
            "start",
            "start_on",
            "clone",
            "copy",
            "provision",
            "destroy",
            "changing_dynamic_range",
            "changing_static_range",
            "changing_memory_limits",
            "changing_VCPUs",
            "snapshot",
        ],
        "Running" => &[
            "snapshot",
            "clean_shutdown",
            "hard_shutdown",
            "clean_reboot",
            "hard_reboot",
            "pause",
            "changing_dynamic_range",
        ],
        "Paused" => &["unpause", "hard_shutdown", "hard_reboot", "snapshot"],
        "Suspended" => &["hard_shutdown", "clone", "copy", "destroy", "snapshot"],
        _ => &[],
    }
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    pub(crate) fn vm_field(&self, vm: &str, f: &str) -> Value {
        self.db
            .field(vm_class(), vm, f)
            .cloned()
            .unwrap_or(Value::Nil)
    }

    pub(crate) fn set_vm(&mut self, vm: &str, f: &str, v: Value) {
        self.db.set_named(vm_class(), vm, f, v);
    }

    /// Recomputes a VM's `allowed_operations` from its state.
    pub(crate) fn refresh_allowed_operations(&mut self, vm: &str) {
        let state = self.vm_field(vm, "power_state");
        let ops = if self.vm_field(vm, "is_a_snapshot").as_bool() == Some(true) {
            crate::snapshots::snapshot_allowed_in(state.as_str().unwrap_or(""))
        } else {
            allowed_in(
                state.as_str().unwrap_or(""),
                self.vm_field(vm, "is_a_template")
                    .as_bool()
                    .unwrap_or(false),
                self.vm_field(vm, "is_control_domain")
                    .as_bool()
                    .unwrap_or(false),
            )
        };
        // A default template cannot be destroyed (xapi's
        // VM_CANNOT_DELETE_DEFAULT_TEMPLATE).
        let default = self.is_default_template(vm);
        let v = Value::Array(
            ops.iter()
                .filter(|o| !(default && **o == "destroy"))
                .map(|o| Value::str(o))
                .collect(),
        );
        self.set_vm(vm, "allowed_operations", v);
    }

    /// Fixes up a record for `VM.create`: Halted, no domain, a metrics object.
    pub(crate) fn prepare_new_vm(&mut self, rec: &mut [Value]) {
        let cd = class(vm_class());
        rec[cd.field("power_state")] = Value::str("Halted");
        rec[cd.field("domid")] = Value::Int(-1);
        let mc = class_id("VM_metrics").expect("schema has VM_metrics");
        let mut m = class(mc).default_record();
        m[class(mc).field("uuid")] = Value::String(self.uuid());
        m[class(mc).field("last_updated")] = Value::DateTime(format_datetime(self.now));
        let mref = self.new_ref();
        self.db.put(mc, &mref, m);
        rec[cd.field("metrics")] = Value::String(mref);
        self.seed_new_vm_macs(rec);
    }

    /// `VM.destroy`: Halted/Suspended only; VBDs, VIFs and metrics go too.
    pub(crate) fn destroy_vm(&mut self, vm: &str) -> Result<Value, ApiError> {
        if self.is_default_template(vm) {
            return Err(ApiError::new(VM_CANNOT_DELETE_DEFAULT_TEMPLATE, &[]));
        }
        self.guest_vm(vm, "cannot destroy the control domain")?;
        if self.building.as_ref().is_some_and(|b| b.vm == vm) {
            return Err(ApiError::new(
                OTHER_OPERATION_IN_PROGRESS,
                &["VM", vm, "start"],
            ));
        }
        let state = self.vm_field(vm, "power_state");
        let state = state.as_str().unwrap_or("");
        if !matches!(state, "Halted" | "Suspended") {
            return Err(ApiError::new(
                VM_BAD_POWER_STATE,
                &[vm, "halted", &state.to_ascii_lowercase()],
            ));
        }
        // xapi keeps the VM's VDIs (its snapshots' too) and leaves its
        // snapshots' `snapshot_of` naming it (VM.revert then makes the VM
        // again); its children get its parent.
        let parent = self.vm_field(vm, "parent");
        if let Value::Array(children) = self.vm_field(vm, "children") {
            for c in children {
                self.set_vm(arg_str(&c), "parent", parent.clone());
            }
        }
        if let Value::Array(refs) = self.vm_field(vm, "VBDs") {
            for r in refs {
                self.delete_vbd(arg_str(&r));
            }
        }
        for (f, cls) in [("consoles", "console")] {
            let c = class_id(cls).expect("schema class");
            if let Value::Array(refs) = self.vm_field(vm, f) {
                for r in refs {
                    self.db.delete(c, arg_str(&r));
                }
            }
        }
        if let Value::Array(refs) = self.vm_field(vm, "VIFs") {
            for r in refs {
                self.delete_vif(arg_str(&r));
            }
        }
        for (f, cls) in [
            ("metrics", "VM_metrics"),
            ("guest_metrics", "VM_guest_metrics"),
        ] {
            let c = class_id(cls).expect("schema class");
            let r = self.vm_field(vm, f);
            self.db.delete(c, arg_str(&r));
        }
        self.db.delete(vm_class(), vm);
        Ok(Value::str(""))
    }

    pub(crate) fn require(
        &self,
        vm: &str,
        op: &str,
        expected: &[&str],
    ) -> Result<String, ApiError> {
        let vc = vm_class();
        let Some(_) = self.db.get(vc, vm) else {
            return Err(handle_invalid(vc, vm));
        };
        if self.vm_field(vm, "is_control_domain").as_bool() == Some(true) {
            return Err(ApiError::new(
                OPERATION_NOT_ALLOWED,
                &["operation not allowed on the control domain"],
            ));
        }
        // A snapshot is also a template (xapi): its own error first.
        if self.vm_field(vm, "is_a_snapshot").as_bool() == Some(true) {
            return Err(ApiError::new(VM_IS_SNAPSHOT, &[vm, op]));
        }
        if self.vm_field(vm, "is_a_template").as_bool() == Some(true) {
            return Err(ApiError::new(VM_IS_TEMPLATE, &[vm, op]));
        }
        let state = self.vm_field(vm, "power_state");
        let state = state.as_str().unwrap_or("").to_string();
        if !expected.contains(&state.as_str()) {
            return Err(ApiError::new(
                VM_BAD_POWER_STATE,
                &[
                    vm,
                    &expected[0].to_ascii_lowercase(),
                    &state.to_ascii_lowercase(),
                ],
            ));
        }
        Ok(state)
    }

    pub(crate) fn domid(&self, vm: &str) -> u32 {
        self.vm_field(vm, "domid").as_int().unwrap_or(-1).max(0) as u32
    }

    pub(crate) fn spec(&self, vm: &str) -> DomainSpec {
        let s = |f: &str| self.vm_field(vm, f).as_str().unwrap_or("").to_string();
        let vcpus = |f: &str| self.vm_field(vm, f).as_int().unwrap_or(1).clamp(1, 512) as u32;
        let at_startup = vcpus("VCPUs_at_startup");
        let vcpus_max = vcpus("VCPUs_max").max(at_startup);
        let (weight, cap) =
            crate::vcpu_params::cpu_share(&self.vm_field(vm, "VCPUs_params"), vcpus_max);
        DomainSpec {
            uuid: s("uuid"),
            name: s("name_label"),
            memory: self
                .vm_field(vm, "memory_static_max")
                .as_int()
                .unwrap_or(0)
                .max(0) as u64,
            vcpus: at_startup,
            vcpus_max,
            bootloader: s("PV_bootloader"),
            kernel: s("PV_kernel"),
            ramdisk: s("PV_ramdisk"),
            cmdline: s("PV_args"),
            domain_type: s("domain_type"),
            weight,
            cap,
        }
    }

    pub(crate) fn set_power(&mut self, vm: &str, state: &str, domid: i64) {
        // The domain is gone (or never was): its VIFs' xenstore
        // directories go at once, with no backend to wait for.
        if state == "Halted" {
            let old = self.vm_field(vm, "domid").as_int().unwrap_or(-1);
            self.detach_vifs(vm, u32::try_from(old).ok());
            self.detach_vbds(vm, u32::try_from(old).ok());
            self.guest_metrics_stopped(vm);
        }
        self.set_vm(vm, "power_state", Value::str(state));
        self.set_vm(vm, "domid", Value::Int(domid));
        let host = if state == "Halted" {
            NULL_REF.to_string()
        } else {
            self.host_ref()
        };
        self.set_vm(vm, "resident_on", Value::String(host));
        // VBDs are attached one by one too (`attach_vbds`, `VBD.plug`).
        self.refresh_vm_vbds(vm);
        // VIFs are attached one by one (`attach_vifs`, `VIF.plug`); the
        // operations they allow follow the VM's state.
        if let Value::Array(refs) = self.vm_field(vm, "VIFs") {
            for r in refs {
                self.refresh_vif_operations(arg_str(&r));
            }
        }
        let mc = class_id("VM_metrics").expect("schema class");
        let m = self.vm_field(vm, "metrics");
        let now = Value::DateTime(format_datetime(self.now));
        // As xapi: the metrics say what kind of domain runs (none when
        // Halted) and when they last changed.
        let live = state == "Running" || state == "Paused";
        let kind = match (live, self.vm_field(vm, "domain_type").as_str()) {
            (false, _) => "unspecified",
            (true, Some("pvh")) => "pvh",
            (true, _) => "pv",
        };
        self.db
            .set_named(mc, arg_str(&m), "current_domain_type", Value::str(kind));
        self.db
            .set_named(mc, arg_str(&m), "last_updated", now.clone());
        if live {
            self.db
                .set_named(mc, arg_str(&m), "state", Value::Array(Vec::new()));
            if self
                .db
                .field(mc, arg_str(&m), "start_time")
                .and_then(Value::as_str)
                == Some("19700101T00:00:00Z")
                || domid >= 0
            {
                self.db.set_named(mc, arg_str(&m), "start_time", now);
            }
        }
        // The memory and vCPUs the domain has (0 when Halted).
        let (memory, vcpus) = if live {
            let spec = self.spec(vm);
            (spec.memory as i64, i64::from(spec.vcpus))
        } else {
            (0, 0)
        };
        self.db
            .set_named(mc, arg_str(&m), "memory_actual", Value::Int(memory));
        self.db
            .set_named(mc, arg_str(&m), "VCPUs_number", Value::Int(vcpus));
        self.sync_consoles(vm, state != "Halted");
        self.refresh_allowed_operations(vm);
        self.refresh_host_memory();
    }

    /// A running VM has one text console (xapi creates a `vt100` console
    /// for a PV guest at start and drops it at shutdown).
    fn sync_consoles(&mut self, vm: &str, running: bool) {
        let cc = class_id("console").expect("schema has console");
        let existing = match self.vm_field(vm, "consoles") {
            Value::Array(a) => a,
            _ => Vec::new(),
        };
        if !running {
            for c in existing {
                self.db.delete(cc, arg_str(&c));
            }
            return;
        }
        if !existing.is_empty() {
            return;
        }
        let cd = class(cc);
        let reference = self.new_ref();
        let hc = class_id("host").expect("schema has host");
        let address = self
            .db
            .field(hc, &self.host_ref(), "address")
            .and_then(Value::as_str)
            .unwrap_or("localhost")
            .to_string();
        let mut rec = cd.default_record();
        rec[cd.field("uuid")] = Value::String(self.uuid());
        rec[cd.field("protocol")] = Value::str("vt100");
        rec[cd.field("location")] =
            Value::String(alloc::format!("http://{address}/console?ref={reference}"));
        rec[cd.field("VM")] = Value::str(vm);
        self.db.put(cc, &reference, rec);
    }

    /// HOST_NOT_ENOUGH_FREE_MEMORY unless Xen has room for `spec`.
    fn check_free_memory(&mut self, spec: &DomainSpec) -> Result<(), ApiError> {
        if let Some((_, free)) = self.hv.host_memory() {
            let needed = spec.memory.saturating_add(domain_overhead(spec));
            if needed > free {
                return Err(ApiError {
                    code: HOST_NOT_ENOUGH_FREE_MEMORY,
                    params: alloc::vec![alloc::format!("{needed}"), alloc::format!("{free}")],
                });
            }
        }
        Ok(())
    }

    /// Builds `vm`'s domain at once and starts it (a reboot's restart).
    pub(crate) fn boot(&mut self, vm: &str, paused: bool) -> Result<(), ApiError> {
        let spec = self.spec(vm);
        self.check_free_memory(&spec)?;
        let domid = self.hv.build(&spec).map_err(hv_err)?;
        self.boot_built(vm, &spec, domid, paused)
    }

    /// A client's start of `vm`: its domain built a step per call
    /// ([`Hypervisor::build_step`]), BUILD_PENDING until built, so dom0
    /// serves other calls between steps. One build at a time: another
    /// VM's start waits (BUILD_PENDING, nothing begun) until the build in
    /// progress ends; another start of the same VM is
    /// OTHER_OPERATION_IN_PROGRESS. An in-process call (no identity,
    /// `Engine::call_value`) builds at once.
    fn start_stepwise(&mut self, vm: &str, paused: bool) -> Result<(), ApiError> {
        let call = self.current_call.clone();
        self.drop_stale_build();
        if let Some(b) = &self.building {
            if b.vm == vm && b.call != call {
                return Err(ApiError::new(
                    OTHER_OPERATION_IN_PROGRESS,
                    &["VM", vm, "start"],
                ));
            }
        }
        if call.is_empty() {
            return self.boot(vm, paused);
        }
        if self.building.as_ref().is_some_and(|b| b.vm != vm) {
            return Err(ApiError::new(BUILD_PENDING, &[]));
        }
        let spec = self.spec(vm);
        if self.building.is_none() {
            self.check_free_memory(&spec)?;
            self.building = Some(Building {
                vm: vm.to_string(),
                uuid: spec.uuid.clone(),
                call,
                last_step: self.now,
            });
        }
        match self.hv.build_step(&spec) {
            Ok(BuildStep::Pending) => {
                if let Some(b) = self.building.as_mut() {
                    b.last_step = self.now;
                }
                Err(ApiError::new(BUILD_PENDING, &[]))
            }
            Ok(BuildStep::Built(domid)) => {
                self.building = None;
                self.boot_built(vm, &spec, domid, paused)
            }
            Err(e) => {
                self.building = None;
                Err(hv_err(e))
            }
        }
    }

    /// Gives up the build in progress if its caller stopped carrying it
    /// on for [`BUILD_STALE_MS`].
    pub(crate) fn drop_stale_build(&mut self) {
        let stale = self
            .building
            .as_ref()
            .is_some_and(|b| self.now >= b.last_step.plus_ms(BUILD_STALE_MS));
        if stale {
            if let Some(b) = self.building.take() {
                self.hv.build_abort(&b.uuid);
            }
        }
    }

    /// Gives up the build in progress if the job of `task` carries it
    /// (the task was cancelled).
    pub(crate) fn give_up_build_of(&mut self, task: &str) {
        if self.building.as_ref().is_some_and(|b| b.call == task) {
            if let Some(b) = self.building.take() {
                self.hv.build_abort(&b.uuid);
            }
        }
    }

    /// Starts `vm` on its built, paused domain `domid`: its CPU share, its
    /// VBDs and VIFs, unpaused unless `paused`; on a failure the domain
    /// goes.
    fn boot_built(
        &mut self,
        vm: &str,
        spec: &DomainSpec,
        domid: u32,
        paused: bool,
    ) -> Result<(), ApiError> {
        // Its CPU share before it first runs (xenopsd sets it at build).
        if let Err(e) = self.hv.set_cpu_share(domid, spec.weight, spec.cap) {
            let _ = self.hv.destroy(domid);
            return Err(hv_err(e));
        }
        // Every VBD and VIF before the guest runs, so its blkfront and
        // netfront find them.
        if let Err(e) = self.attach_vbds(vm, domid) {
            let _ = self.hv.destroy(domid);
            return Err(e);
        }
        if let Err(e) = self.attach_vifs(vm, domid) {
            let _ = self.hv.destroy(domid);
            self.detach_vbds(vm, Some(domid));
            return Err(e);
        }
        if !paused {
            if let Err(e) = self.hv.unpause(domid) {
                let _ = self.hv.destroy(domid);
                self.detach_vifs(vm, Some(domid));
                self.detach_vbds(vm, Some(domid));
                return Err(hv_err(e));
            }
        }
        self.set_power(vm, if paused { "Paused" } else { "Running" }, domid as i64);
        Ok(())
    }

    /// After a restart the hypervisor holds no guest domains: every VM
    /// other than the control domain is marked Halted (xapi resyncs power
    /// states with the hypervisor the same way at start-up), and tasks left
    /// pending (their queued call died with the process) end in failure.
    pub fn recover_after_restart(&mut self, now: crate::value::Instant) -> Result<usize, ApiError> {
        self.now = now;
        self.fail_orphaned_tasks();
        self.now = now;
        let vc = vm_class();
        let cd = class(vc);
        let (ps, ctrl) = (cd.field("power_state"), cd.field("is_control_domain"));
        let stale: Vec<String> = self
            .db
            .table(vc)
            .objects
            .iter()
            .filter(|(_, r)| r[ctrl].as_bool() != Some(true) && r[ps].as_str() != Some("Halted"))
            .map(|(k, _)| k.clone())
            .collect();
        for vm in &stale {
            // No domain survived the restart: nothing to detach from.
            self.set_vm(vm, "domid", Value::Int(-1));
            self.set_power(vm, "Halted", -1);
        }
        self.commit()?;
        Ok(stale.len())
    }

    /// `VM.clean_shutdown` / `VM.clean_reboot` as xapi does them: the
    /// guest is asked through `control/shutdown` and the call waits
    /// (parked) until the guest has stopped, which the board reports to
    /// [`Engine::domain_stopped`]: a clean shutdown then leaves the VM
    /// Halted and a clean reboot starts it again, whatever its
    /// `actions_after_*` say. A guest that does not clear
    /// `control/shutdown` within [`CLEAN_ACK_MS`] fails the call with
    /// `VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT`, one that does not stop within
    /// [`CLEAN_TIMEOUT_MS`] with `VM_SHUTDOWN_TIMEOUT`; it keeps running
    /// (a caller then uses `hard_shutdown`). `Async.VM.clean_*` waits the
    /// same way, its task pending meanwhile. A domain without a xenstore
    /// tree, or a call that cannot wait (an in-process `call_value`), is
    /// shut down from outside (`SCHEDOP_remote_shutdown`) and destroyed at
    /// once.
    pub(crate) fn clean_power(&mut self, started: Instant, op: &str, args: &[Value]) -> Outcome {
        let vm = arg_str(&args[0]).to_string();
        let reason = if op == "clean_reboot" {
            ShutdownReason::Reboot
        } else {
            ShutdownReason::Poweroff
        };
        if let Some(r) = self.clean_requests.get(&vm).cloned() {
            if r.since == started {
                return self.clean_wait(&vm, r);
            }
            // A request whose caller went away (its connection closed, its
            // task was cancelled) is forgotten once it can no longer be
            // answered: the guest stopped, its domain changed, or its time
            // ran out.
            let stale = r.done
                || self.domid(&vm) != r.domid
                || self.now >= r.since.plus_ms(CLEAN_TIMEOUT_MS);
            if !stale {
                return Outcome::Done(Err(ApiError::new(
                    OTHER_OPERATION_IN_PROGRESS,
                    &["VM", vm.as_str()],
                )));
            }
            self.clean_requests.remove(&vm);
        }
        let may_park = started != Instant(0);
        if let Err(e) = self.require(&vm, op, &["Running"]) {
            return Outcome::Done(Err(e));
        }
        let domid = self.domid(&vm);
        let asked = if may_park {
            match self.hv.request_shutdown(domid, reason) {
                Ok(asked) => asked,
                Err(e) => return Outcome::Done(Err(hv_err(e))),
            }
        } else {
            false
        };
        if !asked {
            return Outcome::Done(self.power(op, args));
        }
        let request = CleanRequest {
            domid,
            reason,
            since: started,
            acked: false,
            done: false,
        };
        self.clean_requests.insert(vm.clone(), request.clone());
        self.clean_wait(&vm, request)
    }

    /// A parked clean call, run again: answers once the guest stopped, or
    /// a deadline passed; parks again otherwise.
    fn clean_wait(&mut self, vm: &str, mut r: CleanRequest) -> Outcome {
        if r.done {
            self.clean_requests.remove(vm);
            return Outcome::Done(Ok(Value::str("")));
        }
        let ack_deadline = r.since.plus_ms(CLEAN_ACK_MS);
        let deadline = r.since.plus_ms(CLEAN_TIMEOUT_MS);
        if !r.acked && self.hv.shutdown_acked(r.domid) == Some(true) {
            r.acked = true;
            self.clean_requests.insert(vm.to_string(), r.clone());
        }
        if !r.acked && self.now >= ack_deadline {
            self.clean_requests.remove(vm);
            return Outcome::Done(Err(ApiError::new(VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT, &[vm])));
        }
        if self.now >= deadline {
            self.clean_requests.remove(vm);
            let secs = alloc::format!("{}", CLEAN_TIMEOUT_MS / 1000);
            return Outcome::Done(Err(ApiError::new(
                VM_SHUTDOWN_TIMEOUT,
                &[vm, secs.as_str()],
            )));
        }
        Outcome::Park(if r.acked { deadline } else { ack_deadline })
    }

    /// Runs a VM power message with checked arguments.
    pub(crate) fn power(&mut self, op: &str, args: &[Value]) -> Result<Value, ApiError> {
        let vm = arg_str(&args[0]).to_string();
        let vm = vm.as_str();
        match op {
            "start" => {
                self.require(vm, op, &["Halted"])?;
                let paused = args.get(1).and_then(Value::as_bool).unwrap_or(false);
                self.start_stepwise(vm, paused)?;
            }
            "clean_shutdown" | "hard_shutdown" => {
                let allowed: &[&str] = if op == "clean_shutdown" {
                    &["Running"]
                } else {
                    &["Running", "Paused", "Suspended"]
                };
                let state = self.require(vm, op, allowed)?;
                if state != "Suspended" {
                    let d = self.domid(vm);
                    if op == "clean_shutdown" {
                        self.hv
                            .shutdown(d, ShutdownReason::Poweroff)
                            .map_err(hv_err)?;
                    }
                    self.hv.destroy(d).map_err(hv_err)?;
                }
                self.set_power(vm, "Halted", -1);
            }
            "clean_reboot" | "hard_reboot" => {
                let allowed: &[&str] = if op == "clean_reboot" {
                    &["Running"]
                } else {
                    &["Running", "Paused"]
                };
                self.require(vm, op, allowed)?;
                let d = self.domid(vm);
                if op == "clean_reboot" {
                    self.hv
                        .shutdown(d, ShutdownReason::Reboot)
                        .map_err(hv_err)?;
                }
                self.hv.destroy(d).map_err(hv_err)?;
                self.set_power(vm, "Halted", -1);
                self.boot(vm, false)?;
            }
            "pause" => {
                self.require(vm, op, &["Running"])?;
                self.hv.pause(self.domid(vm)).map_err(hv_err)?;
                let d = self.domid(vm) as i64;
                self.set_power(vm, "Paused", d);
            }
            "unpause" => {
                self.require(vm, op, &["Paused"])?;
                self.hv.unpause(self.domid(vm)).map_err(hv_err)?;
                let d = self.domid(vm) as i64;
                self.set_power(vm, "Running", d);
            }
            _ => return Err(ApiError::new(MESSAGE_METHOD_UNKNOWN, &[op])),
        }
        Ok(Value::str(""))
    }
}
