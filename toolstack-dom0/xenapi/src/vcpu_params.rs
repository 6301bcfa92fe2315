//! `VM.VCPUs_params` `weight` and `cap`: a VM's CPU share under Xen's
//! credit schedulers, applied at start and by `VM.add_to_VCPUs_params_live`.
//!
//! Read first: xapi `xapi_xenops.ml` (`MD.of_vm`, `scheduler_params`),
//! xen/include/public/domctl.h (`xen_domctl_sched_credit2`).
//!
//! - At start, as xapi: `weight` absent means 256 (Xen's default), `cap`
//!   absent means 0 (no cap); a value that does not parse is logged by xapi
//!   and replaced by that default, and the start goes on. Here a value Xen
//!   would refuse (weight outside 1..=65535, cap outside 0..=100 × VCPUs_max)
//!   counts as not parsing: the default, never a failed start.
//! - `add_to_VCPUs_params_live(vm, key, value)` (xenapi.json: "add the given
//!   key-value pair to VM.VCPUs_params, and apply that value on the running
//!   VM"): a Running or Paused VM (else VM_BAD_POWER_STATE); a `weight` or
//!   `cap` that is not valid is refused with INVALID_VALUE `[key, value]`
//!   (asked explicitly, it must not silently do nothing); the pair is
//!   stored, and the resulting weight and cap go to the domain at once.
//!   Other keys are only stored. (xapi itself answers NOT_IMPLEMENTED to
//!   this call; here it does what its documentation says.)

use alloc::string::ToString;

use crate::dispatch::arg_str;
use crate::engine::Engine;
use crate::error::*;
use crate::hypervisor::Hypervisor;
use crate::power::hv_err;
use crate::rng::Entropy;
use crate::value::Value;
use crate::wal::Storage;

/// xapi's weight when `VCPUs_params` has none (Xen's default).
pub const DEFAULT_WEIGHT: u16 = 256;

/// xapi's cap when `VCPUs_params` has none: uncapped.
pub const DEFAULT_CAP: u16 = 0;

/// VM messages implemented here.
pub const VCPU_PARAMS_MESSAGES: &[&str] = &["add_to_VCPUs_params_live"];

/// `value` as a weight Xen accepts (1..=65535).
pub fn parse_weight(value: &str) -> Option<u16> {
    value.parse::<u16>().ok().filter(|w| *w >= 1)
}

/// `value` as a cap Xen accepts for a domain of `vcpus` vCPUs
/// (0..=100 × vcpus, percent of one CPU).
pub fn parse_cap(value: &str, vcpus: u32) -> Option<u16> {
    value
        .parse::<u16>()
        .ok()
        .filter(|c| u32::from(*c) <= 100 * vcpus.max(1))
}

/// The (weight, cap) a VM with `VCPUs_params` `params` and `vcpus`
/// (VCPUs_max) vCPUs starts with, by xapi's rules (module docs).
pub fn cpu_share(params: &Value, vcpus: u32) -> (u16, u16) {
    let get = |k: &str| match params {
        Value::Map(m) => m.get(k).and_then(Value::as_str),
        _ => None,
    };
    let weight = get("weight")
        .and_then(parse_weight)
        .unwrap_or(DEFAULT_WEIGHT);
    let cap = get("cap")
        .and_then(|c| parse_cap(c, vcpus))
        .unwrap_or(DEFAULT_CAP);
    (weight, cap)
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    /// `VM.add_to_VCPUs_params_live(vm, key, value)` (module docs).
    pub(crate) fn add_to_vcpus_params_live(&mut self, args: &[Value]) -> Result<Value, ApiError> {
        let vm = arg_str(&args[0]).to_string();
        let (key, value) = (arg_str(&args[1]), arg_str(&args[2]));
        self.require(&vm, "add_to_VCPUs_params_live", &["Running", "Paused"])?;
        let vcpus = self.spec(&vm).vcpus_max;
        let valid = match key {
            "weight" => parse_weight(value).is_some(),
            "cap" => parse_cap(value, vcpus).is_some(),
            _ => true,
        };
        if !valid {
            return Err(ApiError::new(INVALID_VALUE, &[key, value]));
        }
        let mut params = match self.vm_field(&vm, "VCPUs_params") {
            Value::Map(m) => m,
            _ => Default::default(),
        };
        params.insert(key.to_string(), Value::str(value));
        let params = Value::Map(params);
        if key == "weight" || key == "cap" {
            let (weight, cap) = cpu_share(&params, vcpus);
            self.hv
                .set_cpu_share(self.domid(&vm), weight, cap)
                .map_err(hv_err)?;
        }
        self.set_vm(&vm, "VCPUs_params", params);
        Ok(Value::str(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    fn params(pairs: &[(&str, &str)]) -> Value {
        Value::Map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Value::str(v)))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    #[test]
    fn xapis_defaults_for_absent_and_bad_values() {
        assert_eq!(cpu_share(&params(&[]), 1), (256, 0));
        assert_eq!(
            cpu_share(&params(&[("weight", "384"), ("cap", "50")]), 1),
            (384, 50)
        );
        assert_eq!(cpu_share(&params(&[("weight", "512")]), 1), (512, 0));
        assert_eq!(cpu_share(&params(&[("cap", "150")]), 2), (256, 150));
        // Not numbers, or values Xen refuses: the default.
        for bad in ["", "x", "-1", "0", "65536", "1e3", " 10"] {
            assert_eq!(cpu_share(&params(&[("weight", bad)]), 1).0, 256, "{bad}");
        }
        for bad in ["x", "-1", "101", "65536"] {
            assert_eq!(cpu_share(&params(&[("cap", bad)]), 1).1, 0, "{bad}");
        }
        assert_eq!(cpu_share(&Value::Nil, 1), (256, 0));
    }
}
