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
use crate::error::*;
use crate::hypervisor::{DomainSpec, Hypervisor, HypervisorError, ShutdownReason};
use crate::rng::Entropy;
use crate::schema::{class, class_id, ClassId};
use crate::value::{format_datetime, Value, NULL_REF};
use crate::wal::Storage;

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
        return &["destroy"];
    }
    match state {
        "Halted" => &["start", "destroy"],
        "Running" => &[
            "clean_shutdown",
            "hard_shutdown",
            "clean_reboot",
            "hard_reboot",
            "pause",
        ],
        "Paused" => &["unpause", "hard_shutdown", "hard_reboot"],
        "Suspended" => &["hard_shutdown", "destroy"],
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

    fn set_vm(&mut self, vm: &str, f: &str, v: Value) {
        self.db.set_named(vm_class(), vm, f, v);
    }

    /// Recomputes a VM's `allowed_operations` from its state.
    pub(crate) fn refresh_allowed_operations(&mut self, vm: &str) {
        let state = self.vm_field(vm, "power_state");
        let ops = allowed_in(
            state.as_str().unwrap_or(""),
            self.vm_field(vm, "is_a_template")
                .as_bool()
                .unwrap_or(false),
            self.vm_field(vm, "is_control_domain")
                .as_bool()
                .unwrap_or(false),
        );
        let v = Value::Array(ops.iter().map(|o| Value::str(o)).collect());
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
    }

    /// `VM.destroy`: Halted/Suspended only; VBDs, VIFs and metrics go too.
    pub(crate) fn destroy_vm(&mut self, vm: &str) -> Result<Value, ApiError> {
        if self.vm_field(vm, "is_control_domain").as_bool() == Some(true) {
            return Err(ApiError::new(
                OPERATION_NOT_ALLOWED,
                &["cannot destroy the control domain"],
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
        for (f, cls) in [("VBDs", "VBD"), ("VIFs", "VIF"), ("consoles", "console")] {
            let c = class_id(cls).expect("schema class");
            if let Value::Array(refs) = self.vm_field(vm, f) {
                for r in refs {
                    self.db.delete(c, arg_str(&r));
                }
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

    fn require(&self, vm: &str, op: &str, expected: &[&str]) -> Result<String, ApiError> {
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

    fn spec(&self, vm: &str) -> DomainSpec {
        let s = |f: &str| self.vm_field(vm, f).as_str().unwrap_or("").to_string();
        let vcpus = |f: &str| self.vm_field(vm, f).as_int().unwrap_or(1).clamp(1, 512) as u32;
        let at_startup = vcpus("VCPUs_at_startup");
        DomainSpec {
            uuid: s("uuid"),
            name: s("name_label"),
            memory: self
                .vm_field(vm, "memory_static_max")
                .as_int()
                .unwrap_or(0)
                .max(0) as u64,
            vcpus: at_startup,
            vcpus_max: vcpus("VCPUs_max").max(at_startup),
            kernel: s("PV_kernel"),
            ramdisk: s("PV_ramdisk"),
            cmdline: s("PV_args"),
            domain_type: s("domain_type"),
        }
    }

    pub(crate) fn set_power(&mut self, vm: &str, state: &str, domid: i64) {
        self.set_vm(vm, "power_state", Value::str(state));
        self.set_vm(vm, "domid", Value::Int(domid));
        let host = if state == "Halted" {
            NULL_REF.to_string()
        } else {
            self.host_ref()
        };
        self.set_vm(vm, "resident_on", Value::String(host));
        let attached = state != "Halted";
        for (f, cls) in [("VBDs", "VBD"), ("VIFs", "VIF")] {
            let c = class_id(cls).expect("schema class");
            if let Value::Array(refs) = self.vm_field(vm, f) {
                for r in refs {
                    self.db
                        .set_named(c, arg_str(&r), "currently_attached", Value::Bool(attached));
                }
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
        self.sync_consoles(vm, state != "Halted");
        self.refresh_allowed_operations(vm);
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

    pub(crate) fn boot(&mut self, vm: &str, paused: bool) -> Result<(), ApiError> {
        let spec = self.spec(vm);
        let domid = self.hv.build(&spec).map_err(hv_err)?;
        if !paused {
            if let Err(e) = self.hv.unpause(domid) {
                let _ = self.hv.destroy(domid);
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
            self.set_power(vm, "Halted", -1);
        }
        self.commit()?;
        Ok(stale.len())
    }

    /// Runs a VM power message with checked arguments.
    pub(crate) fn power(&mut self, op: &str, args: &[Value]) -> Result<Value, ApiError> {
        let vm = arg_str(&args[0]).to_string();
        let vm = vm.as_str();
        match op {
            "start" => {
                self.require(vm, op, &["Halted"])?;
                let paused = args.get(1).and_then(Value::as_bool).unwrap_or(false);
                self.boot(vm, paused)?;
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
