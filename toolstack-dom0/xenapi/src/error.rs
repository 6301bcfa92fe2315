//! XenAPI errors: a code from xapi's error table plus string parameters.
//!
//! Codes are spelled exactly as in xenapi.json; a Failure reply carries
//! `[CODE, params...]` (XML-RPC `ErrorDescription`, JSON-RPC `message`/`data`).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// A XenAPI failure: `code` and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The error code, e.g. `HANDLE_INVALID`.
    pub code: &'static str,
    /// The parameters, as strings.
    pub params: Vec<String>,
}

impl ApiError {
    /// An error with the given parameters.
    pub fn new(code: &'static str, params: &[&str]) -> ApiError {
        ApiError {
            code,
            params: params.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// `[code, params...]`, the ErrorDescription list.
    pub fn description(&self) -> Vec<String> {
        let mut v = Vec::with_capacity(self.params.len() + 1);
        v.push(self.code.to_string());
        v.extend(self.params.iter().cloned());
        v
    }
}

/// A reference to an object that does not exist: `[class, ref]`.
pub const HANDLE_INVALID: &str = "HANDLE_INVALID";
/// The session ref is unknown, logged out or expired: `[ref]`.
pub const SESSION_INVALID: &str = "SESSION_INVALID";
/// Wrong user name or password: `[user, reason]`.
pub const SESSION_AUTHENTICATION_FAILED: &str = "SESSION_AUTHENTICATION_FAILED";
/// `add_to_<map>` with a key already present: `[class, field, ref, key]`.
pub const MAP_DUPLICATE_KEY: &str = "MAP_DUPLICATE_KEY";
/// VM in the wrong power state: `[vm, expected, actual]`.
pub const VM_BAD_POWER_STATE: &str = "VM_BAD_POWER_STATE";
/// The operation is not valid for a template: `[vm, operation]`.
pub const VM_IS_TEMPLATE: &str = "VM_IS_TEMPLATE";
/// The guest did not acknowledge a clean shutdown or reboot (it did not
/// clear `control/shutdown` in time): `[vm]`.
pub const VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT: &str = "VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT";
/// The guest acknowledged but did not stop in time: `[vm, timeout_s]`.
pub const VM_SHUTDOWN_TIMEOUT: &str = "VM_SHUTDOWN_TIMEOUT";
/// The host has too little free memory to start the VM: `[needed,
/// available]`, bytes.
pub const HOST_NOT_ENOUGH_FREE_MEMORY: &str = "HOST_NOT_ENOUGH_FREE_MEMORY";
/// Another operation on the object is in progress: `[class, ref]`.
pub const OTHER_OPERATION_IN_PROGRESS: &str = "OTHER_OPERATION_IN_PROGRESS";
/// Unknown method: `[method]`.
pub const MESSAGE_METHOD_UNKNOWN: &str = "MESSAGE_METHOD_UNKNOWN";
/// Wrong number of parameters: `[method, expected, received]`.
pub const MESSAGE_PARAMETER_COUNT_MISMATCH: &str = "MESSAGE_PARAMETER_COUNT_MISMATCH";
/// A parameter or field of the wrong type: `[name]`.
pub const FIELD_TYPE_ERROR: &str = "FIELD_TYPE_ERROR";
/// The operation is not allowed: `[reason]`.
pub const OPERATION_NOT_ALLOWED: &str = "OPERATION_NOT_ALLOWED";
/// A uuid that names no object: `[class, uuid]`.
pub const UUID_INVALID: &str = "UUID_INVALID";
/// An event token older than the retained window: `[]`.
pub const EVENTS_LOST: &str = "EVENTS_LOST";
/// `event.next` without `event.register`: `[]`.
pub const SESSION_NOT_REGISTERED: &str = "SESSION_NOT_REGISTERED";
/// A malformed event token: `[token]`.
pub const EVENT_FROM_TOKEN_PARSE_FAILURE: &str = "EVENT_FROM_TOKEN_PARSE_FAILURE";
/// The task was cancelled: `[task]`.
pub const TASK_CANCELLED: &str = "TASK_CANCELLED";
/// A server-side failure (storage, hypervisor): `[detail]`.
pub const INTERNAL_ERROR: &str = "INTERNAL_ERROR";
/// A request the server could not parse as a call: `[detail]`.
pub const XMLRPC_UNMARSHAL_FAILURE: &str = "XMLRPC_UNMARSHAL_FAILURE";
/// A value a caller passed is out of range: `[field, value]`.
pub const INVALID_VALUE: &str = "INVALID_VALUE";
/// A VIF `device` that is not a decimal number: `[device]`.
pub const INVALID_DEVICE: &str = "INVALID_DEVICE";
/// A malformed MAC address: `[mac]`.
pub const MAC_INVALID: &str = "MAC_INVALID";
/// An address in a VIF's `ipv4_allowed` / `ipv6_allowed` does not parse
/// (`[field]`).
pub const INVALID_IP_ADDRESS_SPECIFIED: &str = "INVALID_IP_ADDRESS_SPECIFIED";
/// The VM already has a device with that number: `[device]`.
pub const DEVICE_ALREADY_EXISTS: &str = "DEVICE_ALREADY_EXISTS";
/// The device is attached already: `[device ref]`.
pub const DEVICE_ALREADY_ATTACHED: &str = "DEVICE_ALREADY_ATTACHED";
/// The device is detached already: `[device ref]`.
pub const DEVICE_ALREADY_DETACHED: &str = "DEVICE_ALREADY_DETACHED";
/// A VDI is used by an attached VBD (or another operation): `[vdi,
/// operation]`.
pub const VDI_IN_USE: &str = "VDI_IN_USE";
/// The VDI is gone from its SR: `[sr, vdi]`.
pub const VDI_MISSING: &str = "VDI_MISSING";
/// A VBD of a VDI type that cannot be attached: `[vdi, type]`.
pub const VDI_INCOMPATIBLE_TYPE: &str = "VDI_INCOMPATIBLE_TYPE";
/// A RW VBD of a read-only VDI: `[vdi]`.
pub const VDI_READONLY: &str = "VDI_READONLY";
/// A resize below the VDI's size: `[vdi, minimum size]`.
pub const VDI_TOO_SMALL: &str = "VDI_TOO_SMALL";
/// A snapshot of a sharable VDI: `[vdi]`.
pub const VDI_IS_SHARABLE: &str = "VDI_IS_SHARABLE";
/// Only a CD VBD may be empty: `[where]`.
pub const VBD_NOT_REMOVABLE_MEDIA: &str = "VBD_NOT_REMOVABLE_MEDIA";
/// A CD VBD must be RO: `[]`.
pub const VBD_CDS_MUST_BE_READONLY: &str = "VBD_CDS_MUST_BE_READONLY";
/// The SR has no room: `[needed, available]`, bytes.
pub const SR_FULL: &str = "SR_FULL";
/// No backend serves the SR (xapi: no plugged PBD): `[sr]`.
pub const SR_HAS_NO_PBDS: &str = "SR_HAS_NO_PBDS";
/// The SR failed: `[message, stdout, stderr]`.
pub const SR_BACKEND_FAILURE: &str = "SR_BACKEND_FAILURE";
/// A quota was reached (objects of a class, tasks, database memory):
/// `[what]`. xcp-rs's own code: xapi has no general quota error.
pub const LIMIT_REACHED: &str = "LIMIT_REACHED";

/// A default (built-in) template cannot be destroyed: `[]` (xapi raises
/// it without parameters).
pub const VM_CANNOT_DELETE_DEFAULT_TEMPLATE: &str = "VM_CANNOT_DELETE_DEFAULT_TEMPLATE";
/// `host.call_plugin` of a plugin the host does not have: `[plugin]`.
pub const XENAPI_MISSING_PLUGIN: &str = "XENAPI_MISSING_PLUGIN";
/// Memory limits out of order: `[constraint]`.
pub const MEMORY_CONSTRAINT_VIOLATION: &str = "MEMORY_CONSTRAINT_VIOLATION";
/// `VBD.insert` into a VBD that holds a disc: `[vbd]`.
pub const VBD_NOT_EMPTY: &str = "VBD_NOT_EMPTY";
/// `VBD.eject` of an empty VBD: `[vbd]`.
pub const VBD_IS_EMPTY: &str = "VBD_IS_EMPTY";
/// An operation a snapshot does not allow (start, snapshot, provision...):
/// `[snapshot, operation]`.
pub const VM_IS_SNAPSHOT: &str = "VM_IS_SNAPSHOT";
/// `VM.revert` of a VM that is not a snapshot: `[]`.
pub const ONLY_REVERT_SNAPSHOT: &str = "ONLY_REVERT_SNAPSHOT";
/// `VM.snapshot_with_quiesce`: no guest has a quiesce agent (xapi removed
/// VSS support): `[vm]`.
pub const VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED: &str = "VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED";
/// `VM.revert` failed midway: `[snapshot, vm]`.
pub const VM_REVERT_FAILED: &str = "VM_REVERT_FAILED";

/// xapi's generic errors (api_errors) that xenapi.json does not list per
/// message; every other code used here must be in its error lists.
pub const XAPI_GENERIC: &[&str] = &[
    HANDLE_INVALID,
    SESSION_INVALID,
    MAP_DUPLICATE_KEY,
    MESSAGE_METHOD_UNKNOWN,
    MESSAGE_PARAMETER_COUNT_MISMATCH,
    FIELD_TYPE_ERROR,
    UUID_INVALID,
    TASK_CANCELLED,
    XMLRPC_UNMARSHAL_FAILURE,
    INVALID_DEVICE,
    MAC_INVALID,
    DEVICE_ALREADY_EXISTS,
    DEVICE_ALREADY_ATTACHED,
    VDI_IS_SHARABLE,
    VBD_CDS_MUST_BE_READONLY,
    SR_BACKEND_FAILURE,
    VM_CANNOT_DELETE_DEFAULT_TEMPLATE,
    XENAPI_MISSING_PLUGIN,
    VM_IS_SNAPSHOT,
    ONLY_REVERT_SNAPSHOT,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_come_from_xapi() {
        let listed = [
            SESSION_AUTHENTICATION_FAILED,
            VM_BAD_POWER_STATE,
            VM_IS_TEMPLATE,
            OPERATION_NOT_ALLOWED,
            EVENTS_LOST,
            SESSION_NOT_REGISTERED,
            EVENT_FROM_TOKEN_PARSE_FAILURE,
            INTERNAL_ERROR,
            INVALID_VALUE,
            DEVICE_ALREADY_DETACHED,
            VDI_IN_USE,
            VDI_MISSING,
            VDI_INCOMPATIBLE_TYPE,
            VDI_READONLY,
            VDI_TOO_SMALL,
            VBD_NOT_REMOVABLE_MEDIA,
            SR_FULL,
            SR_HAS_NO_PBDS,
            VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED,
            VM_REVERT_FAILED,
        ];
        for code in listed {
            assert!(
                crate::schema_gen::ERRORS.contains(&code),
                "{code} not in xenapi.json"
            );
        }
        for code in XAPI_GENERIC {
            assert!(
                !crate::schema_gen::ERRORS.contains(code),
                "{code} is listed; move it"
            );
        }
    }

    #[test]
    fn description_starts_with_code() {
        let e = ApiError::new(HANDLE_INVALID, &["VM", "OpaqueRef:x"]);
        assert_eq!(e.description(), ["HANDLE_INVALID", "VM", "OpaqueRef:x"]);
    }
}
