//! The PVH boot vCPU as HVM save records, for `XEN_DOMCTL_sethvmcontext`.
//!
//! Read first: xen/include/public/hvm/save.h, arch-x86/hvm/save.h, and
//! libxc's `vcpu_hvm` (tools/libs/guest/xg_dom_x86.c) for what a toolstack
//! sends. There is no domctl that takes a `vcpu_hvm_context` for another
//! domain, so the executor reads the new domain's records with
//! `XEN_DOMCTL_gethvmcontext` and [`boot_records`] turns them into the
//! stream to load: Xen's own HEADER record (its magic, version and CPUID
//! are checked on load), a CPU record for vCPU 0 in the plan's 32-bit flat
//! state (everything else zero: the FPU is initialised by Xen, DR6/DR7 hold
//! their reset values), the vCPU's MTRR record with write-back as the
//! enabled default type (a guest with MTRRs off runs uncached), and END.

use alloc::vec::Vec;

use xen_abi::hvm_save::offsets as o;
use xen_abi::hvm_save::{
    seg, HVM_SAVE_CODE_CPU, HVM_SAVE_CODE_END, HVM_SAVE_CODE_HEADER, HVM_SAVE_CODE_MTRR,
    MTRR_DEF_TYPE_ENABLE, MTRR_TYPE_WRBACK, X86_DR6_DEFAULT, X86_DR7_DEFAULT,
};

use crate::pvh::{PvhError, PvhVcpuContext};

/// Most bytes of save records accepted from Xen (a 1-vCPU PVH domain's
/// are a few KiB; 128 vCPUs' CPU records alone are 132 KiB).
pub const MAX_HVM_CONTEXT: usize = 1 << 20;

fn descriptor(typecode: u16, instance: u16, length: usize) -> [u8; o::OFF_DESCRIPTOR_END] {
    let mut d = [0u8; o::OFF_DESCRIPTOR_END];
    d[0..2].copy_from_slice(&typecode.to_le_bytes());
    d[2..4].copy_from_slice(&instance.to_le_bytes());
    d[4..8].copy_from_slice(&(length as u32).to_le_bytes());
    d
}

/// The records to load: `current`'s HEADER, vCPU 0's CPU record set to
/// `vcpu`, vCPU 0's MTRR record with write-back enabled, END. Refuses a
/// `current` without a leading HEADER, without an MTRR record for vCPU 0,
/// or with a record running past its end.
pub fn boot_records(current: &[u8], vcpu: &PvhVcpuContext) -> Result<Vec<u8>, PvhError> {
    let bad = PvhError::BadHvmContext;
    if current.len() > MAX_HVM_CONTEXT {
        return Err(bad);
    }
    let mut header: Option<&[u8]> = None;
    let mut mtrr: Option<&[u8]> = None;
    let mut at = 0usize;
    loop {
        let d = current.get(at..at + o::OFF_DESCRIPTOR_END).ok_or(bad)?;
        let typecode = u16::from_le_bytes([d[0], d[1]]);
        let instance = u16::from_le_bytes([d[2], d[3]]);
        let length = u32::from_le_bytes([d[4], d[5], d[6], d[7]]) as usize;
        let body_at = at + o::OFF_DESCRIPTOR_END;
        let body = current.get(body_at..body_at + length).ok_or(bad)?;
        if at == 0 && typecode != HVM_SAVE_CODE_HEADER {
            return Err(bad);
        }
        match (typecode, instance) {
            (HVM_SAVE_CODE_END, _) => break,
            (HVM_SAVE_CODE_HEADER, _) if at == 0 => header = Some(&current[..body_at + length]),
            (HVM_SAVE_CODE_MTRR, 0) if length == o::OFF_MTRR_END => mtrr = Some(body),
            _ => {}
        }
        at = body_at + length;
    }
    let header = header.ok_or(bad)?;
    let mtrr = mtrr.ok_or(bad)?;

    let mut out = Vec::with_capacity(
        header.len() + 3 * o::OFF_DESCRIPTOR_END + o::OFF_CPU_END + o::OFF_MTRR_END,
    );
    out.extend_from_slice(header);
    out.extend_from_slice(&descriptor(HVM_SAVE_CODE_CPU, 0, o::OFF_CPU_END));
    out.extend_from_slice(&cpu_record(vcpu));
    out.extend_from_slice(&descriptor(HVM_SAVE_CODE_MTRR, 0, o::OFF_MTRR_END));
    let mut m = [0u8; o::OFF_MTRR_END];
    m.copy_from_slice(mtrr);
    let def = u64::from_le_bytes(
        m[o::OFF_MTRR_DEF_TYPE..o::OFF_MTRR_DEF_TYPE + 8]
            .try_into()
            .expect("8 bytes"),
    );
    let def = (def & !0xff) | MTRR_TYPE_WRBACK | MTRR_DEF_TYPE_ENABLE;
    m[o::OFF_MTRR_DEF_TYPE..o::OFF_MTRR_DEF_TYPE + 8].copy_from_slice(&def.to_le_bytes());
    out.extend_from_slice(&m);
    out.extend_from_slice(&descriptor(HVM_SAVE_CODE_END, 0, 0));
    Ok(out)
}

/// `struct hvm_hw_cpu` for the boot vCPU.
fn cpu_record(v: &PvhVcpuContext) -> [u8; o::OFF_CPU_END] {
    let mut c = [0u8; o::OFF_CPU_END];
    let put64 = |c: &mut [u8; o::OFF_CPU_END], off: usize, x: u64| {
        c[off..off + 8].copy_from_slice(&x.to_le_bytes())
    };
    put64(&mut c, o::OFF_CPU_RBX, u64::from(v.ebx));
    put64(&mut c, o::OFF_CPU_RIP, u64::from(v.eip));
    put64(&mut c, o::OFF_CPU_RFLAGS, u64::from(v.eflags));
    put64(&mut c, o::OFF_CPU_CR0, u64::from(v.cr0));
    put64(&mut c, o::OFF_CPU_DR6, X86_DR6_DEFAULT);
    put64(&mut c, o::OFF_CPU_DR7, X86_DR7_DEFAULT);
    let segs = [
        (seg::CS, v.cs),
        (seg::DS, v.data),
        (seg::ES, v.data),
        (seg::SS, v.data),
        (seg::TR, v.tr),
    ];
    for (i, s) in segs {
        put64(&mut c, o::OFF_CPU_BASES + 8 * i, u64::from(s.base));
        let l = o::OFF_CPU_LIMITS + 4 * i;
        c[l..l + 4].copy_from_slice(&s.limit.to_le_bytes());
        let a = o::OFF_CPU_ARBYTES + 4 * i;
        c[a..a + 4].copy_from_slice(&u32::from(s.ar).to_le_bytes());
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pvh::{BOOT_CR0, BOOT_EFLAGS, BOOT_TR, FLAT_CODE32, FLAT_DATA32};

    fn vcpu() -> PvhVcpuContext {
        PvhVcpuContext {
            eip: 0x100_0000,
            ebx: 0x200_0000,
            eflags: BOOT_EFLAGS,
            cr0: BOOT_CR0,
            cs: FLAT_CODE32,
            data: FLAT_DATA32,
            tr: BOOT_TR,
        }
    }

    /// What Xen returns for a new 1-vCPU domain, in shape: HEADER, CPU,
    /// an unrelated record, MTRR, END.
    fn current() -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&descriptor(HVM_SAVE_CODE_HEADER, 0, 24));
        v.extend_from_slice(&[0x11; 24]);
        v.extend_from_slice(&descriptor(HVM_SAVE_CODE_CPU, 0, o::OFF_CPU_END));
        v.extend_from_slice(&[0x55; o::OFF_CPU_END]);
        v.extend_from_slice(&descriptor(3, 0, 16));
        v.extend_from_slice(&[0x33; 16]);
        v.extend_from_slice(&descriptor(HVM_SAVE_CODE_MTRR, 0, o::OFF_MTRR_END));
        let mut m = [0u8; o::OFF_MTRR_END];
        m[0] = 0x77;
        m[o::OFF_MTRR_DEF_TYPE] = 0x0; // uncached, disabled
        v.extend_from_slice(&m);
        v.extend_from_slice(&descriptor(HVM_SAVE_CODE_END, 0, 0));
        v
    }

    fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
    }

    #[test]
    fn the_records_are_header_cpu_mtrr_end() {
        let out = boot_records(&current(), &vcpu()).expect("valid");
        let d = o::OFF_DESCRIPTOR_END;
        assert_eq!(&out[..d + 24], &current()[..d + 24], "Xen's header, as is");
        let cpu = d + 24;
        assert_eq!(
            &out[cpu..cpu + d],
            &descriptor(HVM_SAVE_CODE_CPU, 0, o::OFF_CPU_END)
        );
        let c = &out[cpu + d..cpu + d + o::OFF_CPU_END];
        assert_eq!(u64_at(c, o::OFF_CPU_RIP), 0x100_0000);
        assert_eq!(u64_at(c, o::OFF_CPU_RBX), 0x200_0000);
        assert_eq!(u64_at(c, o::OFF_CPU_CR0), 0x11);
        assert_eq!(u64_at(c, o::OFF_CPU_RFLAGS), 2);
        assert_eq!(u64_at(c, o::OFF_CPU_DR7), 0x400);
        assert_eq!(&c[..512], &[0u8; 512][..], "FPU left to Xen");
        let ar = |i: usize| {
            u32::from_le_bytes(c[o::OFF_CPU_ARBYTES + 4 * i..][..4].try_into().expect("4"))
        };
        assert_eq!(
            (ar(seg::CS), ar(seg::SS), ar(seg::TR), ar(seg::FS)),
            (0xc9b, 0xc93, 0x8b, 0)
        );
        let lim = |i: usize| {
            u32::from_le_bytes(c[o::OFF_CPU_LIMITS + 4 * i..][..4].try_into().expect("4"))
        };
        assert_eq!((lim(seg::CS), lim(seg::DS), lim(seg::TR)), (!0, !0, 0x67));
        let m = cpu + d + o::OFF_CPU_END;
        assert_eq!(
            &out[m..m + d],
            &descriptor(HVM_SAVE_CODE_MTRR, 0, o::OFF_MTRR_END)
        );
        let mb = &out[m + d..m + d + o::OFF_MTRR_END];
        assert_eq!(mb[0], 0x77, "the rest of Xen's MTRR record kept");
        assert_eq!(u64_at(mb, o::OFF_MTRR_DEF_TYPE), 0x806);
        assert_eq!(&out[m + d + o::OFF_MTRR_END..], &descriptor(0, 0, 0));
    }

    #[test]
    fn bad_records_are_refused() {
        let v = vcpu();
        let good = current();
        // No header first.
        assert_eq!(
            boot_records(&good[8 + 24..], &v),
            Err(PvhError::BadHvmContext)
        );
        // Truncated anywhere.
        for cut in [0, 4, 8 + 10, good.len() - 1] {
            assert_eq!(
                boot_records(&good[..cut], &v),
                Err(PvhError::BadHvmContext),
                "cut {cut}"
            );
        }
        // A record claiming more than there is.
        let mut long = good.clone();
        long[8 + 24 + 4..8 + 24 + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(boot_records(&long, &v), Err(PvhError::BadHvmContext));
        // No MTRR record.
        let mut none = good[..8 + 24].to_vec();
        none.extend_from_slice(&descriptor(0, 0, 0));
        assert_eq!(boot_records(&none, &v), Err(PvhError::BadHvmContext));
    }
}
