//! Call dispatch: method names to handlers, parameter count and type checks,
//! session validation, `system.listMethods`, and the generic per-class
//! messages every XenAPI class has (get_all, get_record, get_<f>, set_<f>,
//! add_to_<f>, remove_from_<f>, add_<f>, remove_<f>, create, destroy).
//!
//! Check order follows xapi: unknown method, parameter count, session,
//! parameter types, then handles.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::db::RELATIONS;
use crate::engine::{Engine, Outcome};
use crate::error::*;
use crate::hypervisor::Hypervisor;
use crate::reply::Streamed;
use crate::rng::Entropy;
use crate::schema::{
    class, class_id, classes, optional_params, ClassId, MessageDef, Qualifier, Ty,
};
use crate::snapshots::SNAPSHOT_MESSAGES;
use crate::value::{Instant, Value, NULL_REF};
use crate::vcpu_params::VCPU_PARAMS_MESSAGES;
use crate::vm_ops::{HOST_MESSAGES, NEW_VM_MESSAGES, VBD_MEDIA_MESSAGES};
use crate::wal::Storage;

/// VM messages implemented by power management.
pub const POWER_MESSAGES: &[&str] = &[
    "start",
    "clean_shutdown",
    "hard_shutdown",
    "clean_reboot",
    "hard_reboot",
    "pause",
    "unpause",
];

/// VIF messages implemented by hotplug (`vif.rs`).
pub const VIF_MESSAGES: &[&str] = &["plug", "unplug", "unplug_force"];

/// VBD messages implemented by hotplug (`vbd.rs`).
pub const VBD_MESSAGES: &[&str] = &["plug", "unplug", "unplug_force"];

/// VDI messages implemented over the SR (`storage.rs`).
pub const VDI_MESSAGES: &[&str] = &["resize", "resize_online", "snapshot", "clone"];

/// SR messages implemented over the SR (`storage.rs`).
pub const SR_MESSAGES: &[&str] = &["scan", "update"];

/// True if the engine implements `class.message` (drives listMethods).
pub fn supported(c: ClassId, m: &MessageDef) -> bool {
    let cd = class(c);
    match (cd.name, m.name) {
        ("session", "login_with_password" | "logout") => return true,
        ("session", _) if !m.name.starts_with("get_") => return false,
        ("event", _) => return true,
        ("task", "cancel" | "create") => return true,
        ("VM", n) if POWER_MESSAGES.contains(&n) => return true,
        ("VIF", n) if VIF_MESSAGES.contains(&n) => return true,
        ("VBD", n) if VBD_MESSAGES.contains(&n) || VBD_MEDIA_MESSAGES.contains(&n) => return true,
        ("VM", n) if NEW_VM_MESSAGES.contains(&n) || SNAPSHOT_MESSAGES.contains(&n) => return true,
        ("VM", n) if VCPU_PARAMS_MESSAGES.contains(&n) => return true,
        ("host", n) if HOST_MESSAGES.contains(&n) => return true,
        ("VDI", n) if VDI_MESSAGES.contains(&n) => return true,
        ("SR", n) if SR_MESSAGES.contains(&n) => return true,
        (_, "get_all" | "get_all_records" | "get_record" | "get_by_uuid" | "get_by_name_label") => {
            return true
        }
        (_, "create") => return m.params.len() == 2,
        (_, "destroy") => return m.params.len() == 2,
        _ => {}
    }
    match split_field_message(cd, m.name) {
        Some((p, f)) => generic_field_ok(p, m, Some(f)) && field_message_shape(cd, m),
        None => false,
    }
}

fn generic_field_ok(prefix: &str, m: &MessageDef, f: Option<usize>) -> bool {
    f.is_some()
        && match prefix {
            "get_" => m.params.len() == 2,
            "set_" | "remove_from_" | "add_" | "remove_" => m.params.len() == 3,
            "add_to_" => m.params.len() == 4,
            _ => false,
        }
}

fn field_message_shape(cd: &crate::schema::ClassDef, m: &MessageDef) -> bool {
    // Resolve the longest matching prefix, then check the field type fits.
    let Some((prefix, f)) = split_field_message(cd, m.name) else {
        return false;
    };
    let ty = Ty::parse(cd.fields[f].ty);
    match prefix {
        "get_" | "set_" => true,
        "add_to_" | "remove_from_" => matches!(ty, Ty::Map(_, _)),
        "add_" | "remove_" => matches!(ty, Ty::Set(_)),
        _ => false,
    }
}

/// Splits `add_to_other_config` into ("add_to_", field index), preferring
/// the longest prefix that names a field.
pub fn split_field_message(
    cd: &crate::schema::ClassDef,
    name: &str,
) -> Option<(&'static str, usize)> {
    for p in ["add_to_", "remove_from_", "get_", "set_", "add_", "remove_"] {
        if let Some(f) = name.strip_prefix(p).and_then(|f| cd.field_index(f)) {
            return Some((p, f));
        }
    }
    None
}

/// True if `Async.class.message` exists.
pub fn asyncable(c: ClassId, m: &str) -> bool {
    let name = class(c).name;
    if matches!(name, "session" | "event" | "task") {
        return false;
    }
    (name == "VM" && POWER_MESSAGES.contains(&m))
        || (name == "VIF" && VIF_MESSAGES.contains(&m))
        || (name == "VBD" && (VBD_MESSAGES.contains(&m) || VBD_MEDIA_MESSAGES.contains(&m)))
        || (name == "VM" && NEW_VM_MESSAGES.contains(&m))
        || (name == "VM" && SNAPSHOT_MESSAGES.contains(&m))
        || (name == "host" && HOST_MESSAGES.contains(&m))
        || (name == "VDI" && VDI_MESSAGES.contains(&m))
        || (name == "SR" && SR_MESSAGES.contains(&m))
        || m == "create"
        || m == "destroy"
}

/// Every method the engine implements, as `system.listMethods` reports it.
pub fn list_methods() -> Vec<String> {
    let mut out = Vec::new();
    for (c, cd) in classes().iter().enumerate() {
        for m in cd.messages.iter().chain(cd.pending_messages()) {
            if supported(c, m) {
                out.push(alloc::format!("{}.{}", cd.name, m.name));
                if asyncable(c, m.name) {
                    out.push(alloc::format!("Async.{}.{}", cd.name, m.name));
                }
            }
        }
    }
    out.push("system.listMethods".to_string());
    out
}

fn unknown(method: &str) -> Outcome {
    Outcome::Done(Err(ApiError::new(MESSAGE_METHOD_UNKNOWN, &[method])))
}

/// HANDLE_INVALID for `reference` of class `c`.
pub fn handle_invalid(c: ClassId, reference: &str) -> ApiError {
    ApiError::new(HANDLE_INVALID, &[class(c).name, reference])
}

/// A ref argument as a string.
pub fn arg_str(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    pub(crate) fn dispatch(
        &mut self,
        started: Instant,
        method: &str,
        params: Vec<Value>,
    ) -> Outcome {
        if method == "system.listMethods" {
            let v = list_methods().into_iter().map(Value::String).collect();
            return Outcome::Done(Ok(Value::Array(v)));
        }
        let (is_async, rest) = match method.strip_prefix("Async.") {
            Some(r) => (true, r),
            None => (false, method),
        };
        let Some((cname, mname)) = rest.split_once('.') else {
            return unknown(method);
        };
        let Some(c) = class_id(cname) else {
            return unknown(method);
        };
        let Some(mdef) = class(c).message(mname) else {
            return unknown(method);
        };
        if !supported(c, mdef) || (is_async && !asyncable(c, mname)) {
            return unknown(method);
        }
        if cname == "session" && mname == "login_with_password" {
            return Outcome::Done(self.login(&params));
        }
        // Trailing optional parameters a client left out take their
        // defaults (xapi: `ignore_vdis` of VM.snapshot is empty).
        let mut params = params;
        let optional = optional_params(cname, mname);
        if params.len() < mdef.params.len() && params.len() + optional >= mdef.params.len() {
            for (_, ty) in &mdef.params[params.len()..] {
                params.push(match Ty::parse(ty) {
                    Ty::Set(_) => Value::Array(Vec::new()),
                    Ty::Map(_, _) => Value::Map(Default::default()),
                    _ => Value::str(""),
                });
            }
        }
        if params.len() != mdef.params.len() {
            let (e, g) = (
                alloc::format!("{}", mdef.params.len()),
                alloc::format!("{}", params.len()),
            );
            return Outcome::Done(Err(ApiError::new(
                MESSAGE_PARAMETER_COUNT_MISMATCH,
                &[method, &e, &g],
            )));
        }
        let mut params = params.into_iter();
        let session = match params.next() {
            Some(Value::String(s)) => s,
            _ => return Outcome::Done(Err(ApiError::new(SESSION_INVALID, &[""]))),
        };
        if let Err(e) = self.check_session(&session) {
            return Outcome::Done(Err(e));
        }
        let mut args = Vec::with_capacity(mdef.params.len());
        for ((pname, pty), v) in mdef.params[1..].iter().zip(params) {
            match Ty::parse(pty).coerce(v) {
                Ok(v) => args.push(v),
                Err(()) => return Outcome::Done(Err(ApiError::new(FIELD_TYPE_ERROR, &[pname]))),
            }
        }
        // Reads and calls that free memory are never refused by the quota.
        let exempt = mdef.name.starts_with("get_")
            || mdef.name.starts_with("remove_")
            || matches!(mdef.name, "destroy" | "cancel" | "logout")
            || cname == "event";
        if !exempt {
            let incoming: usize = args.iter().map(Value::approx_size).sum();
            if self
                .db
                .approx_bytes()
                .saturating_add(incoming)
                .saturating_add(64 << 10)
                > self.config.max_db_bytes
            {
                return Outcome::Done(Err(ApiError::new(LIMIT_REACHED, &["database"])));
            }
        }
        if is_async {
            return Outcome::Done(self.queue_job(method, c, mdef.name, args));
        }
        self.exec(started, &session, c, mdef.name, args)
    }

    /// Runs a checked call.
    pub(crate) fn exec(
        &mut self,
        started: Instant,
        session: &str,
        c: ClassId,
        m: &'static str,
        args: Vec<Value>,
    ) -> Outcome {
        self.current_call = match (&self.job_task, started) {
            (Some(task), _) => task.clone(),
            (None, Instant(0)) => String::new(),
            (None, t) => alloc::format!("@{}", t.0),
        };
        match self.exec_call(started, session, c, m, args) {
            // A start whose domain is being built (`power.rs`): called
            // again on the next pass, which carries the build on.
            Outcome::Done(Err(e)) if e.code == crate::power::BUILD_PENDING => {
                Outcome::Park(self.now.plus_ms(crate::power::BUILD_PARK_MS))
            }
            o => o,
        }
    }

    fn exec_call(
        &mut self,
        started: Instant,
        session: &str,
        c: ClassId,
        m: &'static str,
        args: Vec<Value>,
    ) -> Outcome {
        let name = class(c).name;
        if let Some(o) = self.new_vm_call(name, m, &args) {
            return o;
        }
        if let Some(o) = self.snapshot_call(name, m, &args) {
            return o;
        }
        let r = match (name, m) {
            ("session", "logout") => self.logout(session),
            ("event", _) => return self.event_call(started, session, m, args),
            ("task", "cancel") => self.task_cancel(arg_str(&args[0])),
            ("task", "create") => self.task_create(arg_str(&args[0]), arg_str(&args[1])),
            ("VM", "clean_shutdown" | "clean_reboot") => {
                return self.clean_power(started, m, &args)
            }
            ("VM", op) if POWER_MESSAGES.contains(&op) => self.power(op, &args),
            ("VIF", "plug") => self.vif_plug(arg_str(&args[0])),
            ("VIF", op @ ("unplug" | "unplug_force")) => {
                return self.vif_unplug(started, op, arg_str(&args[0]))
            }
            ("VBD", "plug") => self.vbd_plug(arg_str(&args[0])),
            ("VBD", op @ ("unplug" | "unplug_force")) => {
                return self.vbd_unplug(started, op, arg_str(&args[0]))
            }
            ("VDI", op @ ("resize" | "resize_online")) => {
                let size = args.get(1).and_then(Value::as_int).unwrap_or(-1);
                self.resize_vdi(arg_str(&args[0]), size, op == "resize_online")
            }
            ("VDI", op @ ("snapshot" | "clone")) => {
                self.copy_vdi(arg_str(&args[0]), op == "snapshot")
            }
            ("SR", "scan") => self.scan_sr(arg_str(&args[0])),
            ("SR", "update") => self.update_sr(arg_str(&args[0])),
            // Reads are written from the database as the reply is.
            (_, "get_all_records") => return Outcome::Stream(Streamed::Records(c)),
            (_, "get_record") => {
                let r = arg_str(&args[0]);
                return match self.lookup(c, r) {
                    Ok(_) => Outcome::Stream(Streamed::Record(c, r.to_string())),
                    Err(e) => Outcome::Done(Err(e)),
                };
            }
            (_, m) if m.starts_with("get_") => match split_field_message(class(c), m) {
                Some(("get_", f)) => {
                    let r = arg_str(&args[0]);
                    return match self.lookup(c, r) {
                        Ok(_) => Outcome::Stream(Streamed::Field(c, r.to_string(), f)),
                        Err(e) => Outcome::Done(Err(e)),
                    };
                }
                _ => self.generic(c, m, args),
            },
            _ => self.generic(c, m, args),
        };
        Outcome::Done(r)
    }

    fn lookup(&self, c: ClassId, reference: &str) -> Result<&Vec<Value>, ApiError> {
        self.db
            .get(c, reference)
            .ok_or_else(|| handle_invalid(c, reference))
    }

    fn generic(&mut self, c: ClassId, m: &str, args: Vec<Value>) -> Result<Value, ApiError> {
        let cd = class(c);
        match m {
            "get_all" => {
                let refs = self
                    .db
                    .table(c)
                    .objects
                    .keys()
                    .map(|r| Value::str(r))
                    .collect();
                return Ok(Value::Array(refs));
            }
            "get_by_uuid" => {
                let u = arg_str(&args[0]);
                return match self.db.by_uuid(c, u) {
                    Some(r) => Ok(Value::str(r)),
                    None => Err(ApiError::new(UUID_INVALID, &[cd.name, u])),
                };
            }
            "get_by_name_label" => {
                let label = arg_str(&args[0]);
                let f = cd.field("name_label");
                let refs = self
                    .db
                    .table(c)
                    .objects
                    .iter()
                    .filter(|(_, rec)| rec[f].as_str() == Some(label))
                    .map(|(r, _)| Value::str(r))
                    .collect();
                return Ok(Value::Array(refs));
            }
            "create" => return self.create(c, args.into_iter().next().unwrap_or(Value::Nil)),
            "destroy" => return self.destroy(c, arg_str(&args[0])),
            _ => {}
        }
        let (prefix, f) = split_field_message(cd, m)
            .ok_or_else(|| ApiError::new(MESSAGE_METHOD_UNKNOWN, &[m]))?;
        let mut args = args.into_iter();
        let reference = match args.next() {
            Some(Value::String(s)) => s,
            _ => return Err(handle_invalid(c, "")),
        };
        let mut current = self.lookup(c, &reference)?[f].clone();
        if prefix == "get_" {
            return Ok(current);
        }
        let a = args.next().unwrap_or(Value::Nil);
        match (prefix, &mut current) {
            ("set_", _) => current = a,
            ("add_to_", Value::Map(map)) => {
                let key = a.as_str().unwrap_or("").to_string();
                if map.contains_key(&key) {
                    return Err(ApiError::new(
                        MAP_DUPLICATE_KEY,
                        &[cd.name, cd.fields[f].name, &reference, &key],
                    ));
                }
                let val = args.next().unwrap_or(Value::Nil);
                map.insert(key, val);
            }
            ("remove_from_", Value::Map(map)) => {
                map.remove(a.as_str().unwrap_or(""));
            }
            ("add_", Value::Array(set)) => {
                if !set.contains(&a) {
                    set.push(a);
                }
            }
            ("remove_", Value::Array(set)) => set.retain(|x| *x != a),
            _ => return Err(ApiError::new(FIELD_TYPE_ERROR, &[cd.fields[f].name])),
        }
        let field = cd.fields[f].name;
        let rules =
            cd.name == "VIF" && matches!(field, "locking_mode" | "ipv4_allowed" | "ipv6_allowed");
        if rules {
            self.check_vif_rules(field, &current)?;
        }
        self.db.set(c, &reference, f, current);
        if cd.name == "VM" {
            self.refresh_allowed_operations(&reference);
        }
        if rules {
            self.vif_rules_changed(&reference)?;
        }
        Ok(Value::str(""))
    }

    pub(crate) fn create(&mut self, c: ClassId, args: Value) -> Result<Value, ApiError> {
        let cd = class(c);
        if self.db.count(c) >= self.config.max_objects {
            return Err(ApiError::new(LIMIT_REACHED, &[cd.name]));
        }
        let Value::Map(mut given) = args else {
            return Err(ApiError::new(FIELD_TYPE_ERROR, &["args"]));
        };
        let mut rec = cd.default_record();
        for (i, f) in cd.fields.iter().enumerate() {
            if f.qualifier == Qualifier::Runtime {
                continue;
            }
            if let Some(v) = given.remove(f.name) {
                rec[i] = Ty::parse(f.ty)
                    .coerce(v)
                    .map_err(|_| ApiError::new(FIELD_TYPE_ERROR, &[f.name]))?;
            }
        }
        for (child, field, parent, _) in RELATIONS {
            if *child != cd.name {
                continue;
            }
            let Some(i) = cd.field_index(field) else {
                continue;
            };
            let pr = rec[i].as_str().unwrap_or(NULL_REF);
            // An empty CD's VDI is not looked at (xapi's VBD.create):
            // `prepare_new_vbd` makes it the null ref.
            if cd.name == "VBD" && *field == "VDI" && rec[cd.field("empty")] == Value::Bool(true) {
                continue;
            }
            let pc = class_id(parent).expect("relation classes exist");
            if pr != NULL_REF && self.db.get(pc, pr).is_none() {
                return Err(handle_invalid(pc, pr));
            }
        }
        if cd.name == "VIF" {
            self.prepare_new_vif(&mut rec)?;
        }
        if cd.name == "VBD" {
            self.prepare_new_vbd(&mut rec)?;
        }
        if cd.name == "VDI" {
            return self.create_vdi(rec);
        }
        if let Some(i) = cd.field_index("uuid") {
            rec[i] = Value::String(self.uuid());
        }
        let reference = self.new_ref();
        if cd.name == "VM" {
            self.prepare_new_vm(&mut rec);
        }
        self.db.put(c, &reference, rec);
        if cd.name == "VM" {
            self.refresh_allowed_operations(&reference);
        }
        Ok(Value::String(reference))
    }

    fn destroy(&mut self, c: ClassId, reference: &str) -> Result<Value, ApiError> {
        let cd = class(c);
        self.lookup(c, reference)?;
        if matches!(cd.name, "host" | "pool" | "host_metrics") {
            return Err(ApiError::new(
                OPERATION_NOT_ALLOWED,
                &["the host and pool cannot be destroyed"],
            ));
        }
        if cd.name == "VM" {
            return self.destroy_vm(reference);
        }
        if cd.name == "VIF" {
            return self.destroy_vif(reference);
        }
        if cd.name == "VBD" {
            return self.destroy_vbd(reference);
        }
        if cd.name == "VDI" {
            return self.destroy_vdi(reference);
        }
        self.db.delete(c, reference);
        Ok(Value::str(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_methods_is_consistent_with_dispatch() {
        let all = list_methods();
        for m in [
            "VM.get_all_records",
            "VM.add_to_other_config",
            "Async.VM.start",
            "event.from",
            "session.login_with_password",
            "VM.set_name_label",
            "task.cancel",
            "pool.get_all_records",
            "VIF.plug",
            "VIF.unplug_force",
            "Async.VIF.unplug",
            "VBD.plug",
            "Async.VBD.unplug",
            "VDI.snapshot",
            "Async.VDI.clone",
            "SR.scan",
            "Async.SR.update",
            "VIF_metrics.get_all_records",
            "VM.clone",
            "Async.VM.clone",
            "Async.VM.copy",
            "Async.VM.provision",
            "VM.set_memory_limits",
            "VM.get_allowed_VBD_devices",
            "VM.start_on",
            "Async.VM.assert_can_boot_here",
            "VBD.insert",
            "Async.VBD.eject",
            "host.get_servertime",
            "Async.host.call_plugin",
            "VM.snapshot",
            "Async.VM.snapshot",
            "VM.revert",
            "Async.VM.revert",
            "VM.checkpoint",
            "VM.snapshot_with_quiesce",
        ] {
            assert!(all.iter().any(|x| x == m), "{m} missing");
        }
        assert!(!all.iter().any(|x| x == "session.change_password"));
        assert!(!all.iter().any(|x| x.starts_with("Async.event")));
        let mut sorted = all.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len(), "a method is listed twice");
    }
}
