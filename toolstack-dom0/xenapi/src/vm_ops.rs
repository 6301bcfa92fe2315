//! The VM, VBD and host calls a New-VM flow makes besides clone and
//! provision, with xapi's checks.
//!
//! Read first: xapi `xapi_vm.ml` (the setters), `vm_memory_constraints.ml`,
//! `xapi_vm_helpers.ml` (`assert_can_boot_here`, allowed devices),
//! `xapi_vbd.ml` (insert / eject), `xapi_host.ml`.
//!
//! - Memory: `set_memory_limits(static_min, static_max, dynamic_min,
//!   dynamic_max)`, `set_memory_static_range(min, max)`, `set_memory(v)`
//!   (static_max = dynamic_min = dynamic_max = v, static_min kept) and the
//!   four `set_memory_*` field setters need a Halted VM (VM_BAD_POWER_STATE
//!   `[vm, halted, actual]`); `set_memory_dynamic_range(min, max)` and
//!   `set_memory_dynamic_{min,max}` also take a Running one (the values
//!   are stored; a running domain is not ballooned). All check
//!   0 ≤ static_min ≤ dynamic_min ≤ dynamic_max ≤ static_max, else
//!   MEMORY_CONSTRAINT_VIOLATION `[constraint]`; `memory_target` follows
//!   dynamic_max.
//! - `set_VCPUs_max(v)`: Halted; 1 ≤ v and v ≥ VCPUs_at_startup, else
//!   INVALID_VALUE `[`[`VCPU_ORDER`]`, v]`. `set_VCPUs_at_startup(v)`: any
//!   state; 1 ≤ v ≤ VCPUs_max.
//! - `set_domain_type(t)`: `unspecified` is INVALID_VALUE; sets
//!   `HVM_boot_policy` to "BIOS order" for hvm and "" otherwise;
//!   `set_HVM_boot_policy(p)` sets `domain_type` to hvm for a non-empty
//!   policy and pv for an empty one (xapi's `derive_domain_type`).
//! - `set_is_a_template(false)` is allowed on a default template too, as
//!   in xapi (`other_config:default_template` still forbids its destroy).
//! - `get_allowed_VBD_devices`: userdevices 0..=254 (xapi gives HVM
//!   guests the PV range too), less those the VM uses; `get_allowed_VIF_devices`:
//!   0..=6 less those used (xapi's lists).
//! - `start_on(vm, host, paused, force)`: `host` must be this host
//!   (HANDLE_INVALID `[host, ref]`); then as `start`.
//!   `assert_can_boot_here(vm, host)`: HANDLE_INVALID for an unknown host,
//!   VM_IS_TEMPLATE, OPERATION_NOT_ALLOWED for the control domain,
//!   VM_BAD_POWER_STATE unless Halted (or Suspended), the memory order
//!   (MEMORY_CONSTRAINT_VIOLATION), HOST_NOT_ENOUGH_FREE_MEMORY `[needed,
//!   available]` as `start` computes it.
//! - `VBD.insert(vbd, vdi)`: a CD VBD (VBD_NOT_REMOVABLE_MEDIA `[vbd]`),
//!   empty (VBD_NOT_EMPTY `[vbd]`), a VDI of an attachable type; an
//!   attached VBD also gets the medium through
//!   `Hypervisor::vbd_change_media`. `VBD.eject(vbd)`: a CD
//!   (VBD_NOT_REMOVABLE_MEDIA), not empty (VBD_IS_EMPTY `[vbd]`); it
//!   becomes empty with the null VDI.
//! - `host.get_servertime` / `host.get_server_localtime`: the engine's
//!   time, UTC (the host keeps UTC). `host.call_plugin`: no plugin is
//!   installed, XENAPI_MISSING_PLUGIN `[plugin]`.

use alloc::string::ToString;
use alloc::vec::Vec;

use crate::dispatch::{arg_str, handle_invalid};
use crate::engine::{Engine, Outcome};
use crate::error::*;
use crate::hypervisor::Hypervisor;
use crate::power::{domain_overhead, hv_err, vm_class};
use crate::rng::Entropy;
use crate::schema::class_id;
use crate::storage::{vdi_class, ATTACHABLE_VDI_TYPES};
use crate::value::{format_datetime, Value, NULL_REF};
use crate::vbd::{parse_userdevice, vbd_class, MAX_USERDEVICE};
use crate::wal::Storage;

/// The VCPU order xapi states in INVALID_VALUE.
pub const VCPU_ORDER: &str = "VCPU values must satisfy: 0 < VCPUs_at_startup ≤ VCPUs_max";

/// The memory order xapi states in MEMORY_CONSTRAINT_VIOLATION.
pub const MEMORY_ORDER: &str =
    "Memory limits must satisfy: static_min ≤ dynamic_min ≤ dynamic_max ≤ static_max";

/// VM setters with checks (routed before the generic setter).
pub const CHECKED_VM_SETTERS: &[&str] = &[
    "set_memory_static_min",
    "set_memory_static_max",
    "set_memory_dynamic_min",
    "set_memory_dynamic_max",
    "set_VCPUs_max",
    "set_VCPUs_at_startup",
    "set_domain_type",
    "set_HVM_boot_policy",
    "set_is_a_template",
];

/// (static_min, dynamic_min, dynamic_max, static_max).
type Limits = [i64; 4];

fn check_order(l: Limits) -> Result<(), ApiError> {
    if l[0] >= 0 && l[0] <= l[1] && l[1] <= l[2] && l[2] <= l[3] {
        Ok(())
    } else {
        Err(ApiError::new(MEMORY_CONSTRAINT_VIOLATION, &[MEMORY_ORDER]))
    }
}

fn int_arg(args: &[Value], i: usize) -> i64 {
    args.get(i).and_then(Value::as_int).unwrap_or(-1)
}

fn used_devices(e: Vec<Value>, c: crate::schema::ClassId, db: &crate::db::Db, f: &str) -> Vec<u32> {
    e.iter()
        .filter_map(|r| db.field(c, arg_str(r), f).and_then(Value::as_str))
        .filter_map(parse_userdevice)
        .collect()
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    fn limits(&self, vm: &str) -> Limits {
        let g = |f: &str| self.vm_field(vm, f).as_int().unwrap_or(0);
        [
            g("memory_static_min"),
            g("memory_dynamic_min"),
            g("memory_dynamic_max"),
            g("memory_static_max"),
        ]
    }

    /// The VM exists (else HANDLE_INVALID) and is a guest, not the control
    /// domain (else OPERATION_NOT_ALLOWED saying `refusal`): what every
    /// call that changes a guest checks first.
    pub(crate) fn guest_vm(&self, vm: &str, refusal: &str) -> Result<(), ApiError> {
        let vc = vm_class();
        if self.db.get(vc, vm).is_none() {
            return Err(handle_invalid(vc, vm));
        }
        if self.vm_field(vm, "is_control_domain").as_bool() == Some(true) {
            return Err(ApiError::new(OPERATION_NOT_ALLOWED, &[refusal]));
        }
        Ok(())
    }

    /// The VM exists, is not the control domain, and is in one of `states`.
    fn vm_in(&self, vm: &str, states: &[&str]) -> Result<(), ApiError> {
        self.guest_vm(vm, "operation not allowed on the control domain")?;
        let state = self.vm_field(vm, "power_state");
        let state = state.as_str().unwrap_or("");
        if !states.contains(&state) {
            return Err(ApiError::new(
                VM_BAD_POWER_STATE,
                &[
                    vm,
                    &states[0].to_ascii_lowercase(),
                    &state.to_ascii_lowercase(),
                ],
            ));
        }
        Ok(())
    }

    fn store_limits(&mut self, vm: &str, l: Limits) {
        let vc = vm_class();
        for (f, v) in [
            ("memory_static_min", l[0]),
            ("memory_dynamic_min", l[1]),
            ("memory_dynamic_max", l[2]),
            ("memory_static_max", l[3]),
            ("memory_target", l[2]),
        ] {
            self.db.set_named(vc, vm, f, Value::Int(v));
        }
    }

    /// The memory messages (`set_memory_limits`, `_static_range`,
    /// `_dynamic_range`, `set_memory`).
    pub(crate) fn set_memory_call(&mut self, m: &str, args: &[Value]) -> Result<Value, ApiError> {
        let vm = arg_str(&args[0]).to_string();
        let live = m == "set_memory_dynamic_range";
        self.vm_in(
            &vm,
            if live {
                &["Halted", "Running"]
            } else {
                &["Halted"]
            },
        )?;
        let mut l = self.limits(&vm);
        match m {
            "set_memory_limits" => {
                l = [
                    int_arg(args, 1),
                    int_arg(args, 3),
                    int_arg(args, 4),
                    int_arg(args, 2),
                ];
            }
            "set_memory_static_range" => {
                l[0] = int_arg(args, 1);
                l[3] = int_arg(args, 2);
            }
            "set_memory_dynamic_range" => {
                l[1] = int_arg(args, 1);
                l[2] = int_arg(args, 2);
            }
            _ => {
                let v = int_arg(args, 1);
                l[1] = v;
                l[2] = v;
                l[3] = v;
            }
        }
        check_order(l)?;
        self.store_limits(&vm, l);
        Ok(Value::str(""))
    }

    /// The VM setters with side effects or checks ([`CHECKED_VM_SETTERS`]).
    pub(crate) fn checked_vm_setter(&mut self, m: &str, args: &[Value]) -> Result<Value, ApiError> {
        let vm = arg_str(&args[0]).to_string();
        let vc = vm_class();
        if self.db.get(vc, &vm).is_none() {
            return Err(handle_invalid(vc, &vm));
        }
        let value = args.get(1).cloned().unwrap_or(Value::Nil);
        match m {
            "set_memory_static_min"
            | "set_memory_static_max"
            | "set_memory_dynamic_min"
            | "set_memory_dynamic_max" => {
                let dynamic = m.contains("dynamic");
                self.vm_in(
                    &vm,
                    if dynamic {
                        &["Halted", "Running"]
                    } else {
                        &["Halted"]
                    },
                )?;
                let mut l = self.limits(&vm);
                let i = match m {
                    "set_memory_static_min" => 0,
                    "set_memory_dynamic_min" => 1,
                    "set_memory_dynamic_max" => 2,
                    _ => 3,
                };
                l[i] = value.as_int().unwrap_or(-1);
                check_order(l)?;
                self.store_limits(&vm, l);
            }
            "set_VCPUs_max" | "set_VCPUs_at_startup" => {
                // xapi: VCPUs_max only while Halted (`changing_VCPUs`);
                // VCPUs_at_startup in any state, never on the control domain.
                if m == "set_VCPUs_max" {
                    self.vm_in(&vm, &["Halted"])?;
                } else {
                    self.vm_in(&vm, &["Halted", "Running", "Paused", "Suspended"])?;
                }
                let v = value.as_int().unwrap_or(0);
                let max = self.vm_field(&vm, "VCPUs_max").as_int().unwrap_or(1);
                let at = self.vm_field(&vm, "VCPUs_at_startup").as_int().unwrap_or(1);
                let (field, ok) = if m == "set_VCPUs_max" {
                    ("VCPUs_max", v >= 1 && v >= at)
                } else {
                    ("VCPUs_at_startup", v >= 1 && v <= max)
                };
                if !ok {
                    let s = alloc::format!("{v}");
                    return Err(ApiError::new(INVALID_VALUE, &[VCPU_ORDER, &s]));
                }
                self.db.set_named(vc, &vm, field, Value::Int(v));
            }
            "set_domain_type" => {
                let t = value.as_str().unwrap_or("").to_ascii_lowercase();
                if t == "unspecified" {
                    return Err(ApiError::new(INVALID_VALUE, &["domain_type", &t]));
                }
                let policy = if t == "hvm" { "BIOS order" } else { "" };
                self.db.set_named(vc, &vm, "domain_type", Value::String(t));
                self.db
                    .set_named(vc, &vm, "HVM_boot_policy", Value::str(policy));
            }
            "set_HVM_boot_policy" => {
                let p = value.as_str().unwrap_or("").to_string();
                let t = if p.is_empty() { "pv" } else { "hvm" };
                self.db.set_named(vc, &vm, "domain_type", Value::str(t));
                self.db
                    .set_named(vc, &vm, "HVM_boot_policy", Value::String(p));
            }
            _ => {
                // set_is_a_template: xapi lets a default template be made a
                // VM (it then still cannot be destroyed).
                let v = value.as_bool().unwrap_or(false);
                if self.vm_field(&vm, "is_control_domain").as_bool() == Some(true) {
                    return Err(ApiError::new(
                        OPERATION_NOT_ALLOWED,
                        &["operation not allowed on the control domain"],
                    ));
                }
                self.db.set_named(vc, &vm, "is_a_template", Value::Bool(v));
                if !v {
                    self.db
                        .set_named(vc, &vm, "is_default_template", Value::Bool(false));
                }
            }
        }
        self.refresh_allowed_operations(&vm);
        Ok(Value::str(""))
    }

    /// `VM.get_allowed_VBD_devices` / `VM.get_allowed_VIF_devices`.
    pub(crate) fn allowed_devices(&self, vm: &str, vbd: bool) -> Result<Value, ApiError> {
        let vc = vm_class();
        if self.db.get(vc, vm).is_none() {
            return Err(handle_invalid(vc, vm));
        }
        let (field, c, last) = if vbd {
            // xapi allows the PV range to HVM guests too (0..254).
            let last = if self.vm_field(vm, "is_control_domain").as_bool() == Some(true) {
                MAX_USERDEVICE
            } else {
                254
            };
            ("VBDs", vbd_class(), last)
        } else {
            ("VIFs", crate::vif::vif_class(), 6)
        };
        let refs = match self.vm_field(vm, field) {
            Value::Array(a) => a,
            _ => Vec::new(),
        };
        let used = used_devices(refs, c, &self.db, if vbd { "userdevice" } else { "device" });
        Ok(Value::Array(
            (0..=last)
                .filter(|d| !used.contains(d))
                .map(|d| Value::String(alloc::format!("{d}")))
                .collect(),
        ))
    }

    fn this_host(&self, host: &str) -> Result<(), ApiError> {
        let hc = class_id("host").expect("schema has host");
        if self.db.get(hc, host).is_none() {
            return Err(handle_invalid(hc, host));
        }
        Ok(())
    }

    /// `VM.start_on(vm, host, start_paused, force)`.
    pub(crate) fn start_on(&mut self, args: &[Value]) -> Result<Value, ApiError> {
        let vc = vm_class();
        let vm = arg_str(&args[0]);
        if self.db.get(vc, vm).is_none() {
            return Err(handle_invalid(vc, vm));
        }
        self.this_host(arg_str(&args[1]))?;
        let start = [args[0].clone(), args[2].clone(), args[3].clone()];
        self.power("start", &start)
    }

    /// `VM.assert_can_boot_here(vm, host)`.
    pub(crate) fn assert_can_boot_here(&mut self, vm: &str, host: &str) -> Result<Value, ApiError> {
        let vc = vm_class();
        if self.db.get(vc, vm).is_none() {
            return Err(handle_invalid(vc, vm));
        }
        self.this_host(host)?;
        self.require(vm, "start", &["Halted", "Suspended"])?;
        check_order(self.limits(vm))?;
        let spec = self.spec(vm);
        if let Some((_, free)) = self.hv.host_memory() {
            let needed = spec.memory.saturating_add(domain_overhead(&spec));
            if needed > free {
                return Err(ApiError {
                    code: HOST_NOT_ENOUGH_FREE_MEMORY,
                    params: alloc::vec![alloc::format!("{needed}"), alloc::format!("{free}")],
                });
            }
        }
        Ok(Value::str(""))
    }

    /// `VBD.insert` / `VBD.eject`.
    pub(crate) fn vbd_media(&mut self, vbd: &str, vdi: Option<&str>) -> Result<Value, ApiError> {
        let bc = vbd_class();
        if self.db.get(bc, vbd).is_none() {
            return Err(handle_invalid(bc, vbd));
        }
        let f = |e: &Self, n: &str| e.db.field(bc, vbd, n).cloned().unwrap_or(Value::Nil);
        if f(self, "type").as_str() != Some("CD") {
            return Err(ApiError::new(VBD_NOT_REMOVABLE_MEDIA, &[vbd]));
        }
        let empty = f(self, "empty").as_bool() == Some(true);
        match vdi {
            Some(vdi) => {
                if !empty {
                    return Err(ApiError::new(VBD_NOT_EMPTY, &[vbd]));
                }
                let vc = vdi_class();
                if self.db.get(vc, vdi).is_none() {
                    return Err(handle_invalid(vc, vdi));
                }
                let ty = self.vdi_field(vdi, "type");
                let ty = ty.as_str().unwrap_or("");
                if !ATTACHABLE_VDI_TYPES.contains(&ty) {
                    return Err(ApiError::new(VDI_INCOMPATIBLE_TYPE, &[vdi, ty]));
                }
                self.vdi_sr(vdi)?;
            }
            None if empty => return Err(ApiError::new(VBD_IS_EMPTY, &[vbd])),
            None => {}
        }
        let old = f(self, "VDI");
        self.db
            .set_named(bc, vbd, "empty", Value::Bool(vdi.is_none()));
        self.db
            .set_named(bc, vbd, "VDI", Value::str(vdi.unwrap_or(NULL_REF)));
        if f(self, "currently_attached").as_bool() == Some(true) {
            let vm = f(self, "VM");
            let domid = self.domid(arg_str(&vm));
            let r = self
                .vbd_device(vbd)
                .and_then(|dev| self.hv.vbd_change_media(domid, &dev).map_err(hv_err));
            if let Err(e) = r {
                self.db.set_named(bc, vbd, "empty", Value::Bool(empty));
                self.db.set_named(bc, vbd, "VDI", old);
                return Err(e);
            }
        }
        self.refresh_vbd_operations(vbd);
        self.refresh_vdi_operations(arg_str(&old));
        Ok(Value::str(""))
    }

    /// The host messages: `get_servertime`, `get_server_localtime`,
    /// `call_plugin`.
    pub(crate) fn host_call(&mut self, m: &str, args: &[Value]) -> Result<Value, ApiError> {
        self.this_host(arg_str(&args[0]))?;
        match m {
            "call_plugin" => Err(ApiError::new(XENAPI_MISSING_PLUGIN, &[arg_str(&args[1])])),
            _ => Ok(Value::DateTime(format_datetime(self.now))),
        }
    }

    /// Routes the calls of this module and `templates.rs`; None for others.
    pub(crate) fn new_vm_call(&mut self, cname: &str, m: &str, args: &[Value]) -> Option<Outcome> {
        let r = match (cname, m) {
            ("VM", "clone") => self.clone_vm(arg_str(&args[0]), arg_str(&args[1]), false, NULL_REF),
            ("VM", "copy") => self.clone_vm(
                arg_str(&args[0]),
                arg_str(&args[1]),
                true,
                arg_str(&args[2]),
            ),
            ("VM", "provision") => self.provision_vm(arg_str(&args[0])),
            (
                "VM",
                "set_memory_limits"
                | "set_memory_static_range"
                | "set_memory_dynamic_range"
                | "set_memory",
            ) => self.set_memory_call(m, args),
            ("VM", "get_allowed_VBD_devices") => self.allowed_devices(arg_str(&args[0]), true),
            ("VM", "get_allowed_VIF_devices") => self.allowed_devices(arg_str(&args[0]), false),
            ("VM", "start_on") => self.start_on(args),
            ("VM", "assert_can_boot_here") => {
                self.assert_can_boot_here(arg_str(&args[0]), arg_str(&args[1]))
            }
            ("VM", s) if CHECKED_VM_SETTERS.contains(&s) => self.checked_vm_setter(s, args),
            ("VM", "add_to_VCPUs_params_live") => self.add_to_vcpus_params_live(args),
            ("VBD", "insert") => self.vbd_media(arg_str(&args[0]), Some(arg_str(&args[1]))),
            ("VBD", "eject") => self.vbd_media(arg_str(&args[0]), None),
            ("host", h @ ("get_servertime" | "get_server_localtime" | "call_plugin")) => {
                self.host_call(h, args)
            }
            _ => return None,
        };
        Some(Outcome::Done(r))
    }
}

/// VM messages implemented here and in `templates.rs`.
pub const NEW_VM_MESSAGES: &[&str] = &[
    "clone",
    "copy",
    "provision",
    "set_memory_limits",
    "set_memory_static_range",
    "set_memory_dynamic_range",
    "set_memory",
    "get_allowed_VBD_devices",
    "get_allowed_VIF_devices",
    "start_on",
    "assert_can_boot_here",
];

/// Host messages implemented here.
pub const HOST_MESSAGES: &[&str] = &["get_servertime", "get_server_localtime", "call_plugin"];

/// VBD media messages implemented here.
pub const VBD_MEDIA_MESSAGES: &[&str] = &["insert", "eject"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_order() {
        assert!(check_order([1, 2, 3, 4]).is_ok());
        assert!(check_order([4, 4, 4, 4]).is_ok());
        assert!(check_order([-1, 2, 3, 4]).is_err());
        assert!(check_order([1, 3, 2, 4]).is_err());
        assert!(check_order([1, 2, 5, 4]).is_err());
        assert!(check_order([3, 2, 3, 4]).is_err());
    }
}
