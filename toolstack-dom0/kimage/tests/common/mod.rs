//! Test images: small ELF64 kernels with Xen notes, compressed at test time
//! (gzip and xz by their commands, zstd by ruzstd's encoder) and wrapped in
//! a minimal bzImage.
#![allow(dead_code)] // reason: each test binary uses a different subset

use std::io::Write;
use std::process::{Command, Stdio};

use xen_abi::elfnote::{XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_GUEST_OS, XEN_ELFNOTE_PHYS32_ENTRY};

/// One PT_LOAD: where, its file bytes, its memory size.
#[derive(Clone)]
pub struct Seg {
    pub paddr: u64,
    pub data: Vec<u8>,
    pub memsz: u64,
}

/// A program header as raw fields (for hostile images).
#[derive(Clone, Copy)]
pub struct Phdr {
    pub p_type: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub paddr: u64,
    pub filesz: u64,
    pub memsz: u64,
    pub align: u64,
}

pub fn note(name: &[u8], n_type: u32, desc: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(name.len() as u32).to_le_bytes());
    v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    v.extend_from_slice(&n_type.to_le_bytes());
    v.extend_from_slice(name);
    v.resize(v.len().next_multiple_of(4), 0);
    v.extend_from_slice(desc);
    v.resize(v.len().next_multiple_of(4), 0);
    v
}

/// The Xen notes of a PVH-capable Linux: PHYS32_ENTRY at `entry`.
pub fn linux_notes(entry: u32) -> Vec<u8> {
    let mut n = note(b"Xen\0", XEN_ELFNOTE_GUEST_OS, b"linux\0");
    n.extend(note(
        b"Xen\0",
        XEN_ELFNOTE_PHYS32_ENTRY,
        &entry.to_le_bytes(),
    ));
    n.extend(note(
        b"Xen\0",
        XEN_ELFNOTE_ENTRY,
        &0xffff_ffff_8100_0000u64.to_le_bytes(),
    ));
    n
}

/// An ELF64 x86-64 executable from raw program headers and a body placed
/// right after them (offsets in `phdrs` are the caller's).
pub fn elf_raw(phdrs: &[Phdr], body: &[u8]) -> Vec<u8> {
    let mut e = vec![0u8; 64];
    e[..4].copy_from_slice(b"\x7fELF");
    e[4] = 2;
    e[5] = 1;
    e[6] = 1;
    e[16..18].copy_from_slice(&2u16.to_le_bytes());
    e[18..20].copy_from_slice(&62u16.to_le_bytes());
    e[20..24].copy_from_slice(&1u32.to_le_bytes());
    e[24..32].copy_from_slice(&0xffff_ffff_8100_0000u64.to_le_bytes());
    e[32..40].copy_from_slice(&64u64.to_le_bytes());
    e[52..54].copy_from_slice(&64u16.to_le_bytes());
    e[54..56].copy_from_slice(&56u16.to_le_bytes());
    e[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
    for p in phdrs {
        e.extend_from_slice(&p.p_type.to_le_bytes());
        e.extend_from_slice(&7u32.to_le_bytes());
        for v in [p.offset, p.vaddr, p.paddr, p.filesz, p.memsz, p.align] {
            e.extend_from_slice(&v.to_le_bytes());
        }
    }
    e.extend_from_slice(body);
    e
}

/// An ELF32 i386 executable from raw program headers (their fields cut to
/// 32 bits) and a body placed right after them, as GRUB's `i386-xen_pvh`
/// image is laid out.
pub fn elf32_raw(phdrs: &[Phdr], body: &[u8]) -> Vec<u8> {
    let mut e = vec![0u8; 52];
    e[..4].copy_from_slice(b"\x7fELF");
    e[4] = 1;
    e[5] = 1;
    e[6] = 1;
    e[16..18].copy_from_slice(&2u16.to_le_bytes());
    e[18..20].copy_from_slice(&3u16.to_le_bytes());
    e[20..24].copy_from_slice(&1u32.to_le_bytes());
    e[24..28].copy_from_slice(&0x10_0000u32.to_le_bytes());
    e[28..32].copy_from_slice(&52u32.to_le_bytes());
    e[40..42].copy_from_slice(&52u16.to_le_bytes());
    e[42..44].copy_from_slice(&32u16.to_le_bytes());
    e[44..46].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
    for p in phdrs {
        e.extend_from_slice(&p.p_type.to_le_bytes());
        for v in [p.offset, p.vaddr, p.paddr, p.filesz, p.memsz] {
            e.extend_from_slice(&(v as u32).to_le_bytes());
        }
        e.extend_from_slice(&7u32.to_le_bytes());
        e.extend_from_slice(&(p.align as u32).to_le_bytes());
    }
    e.extend_from_slice(body);
    e
}

/// A well-formed ELF: a PT_NOTE with `notes`, then `segs` in order, each
/// 16-aligned in the file, then `trailer` (like vmlinux's symbols).
pub fn elf(segs: &[Seg], notes: &[u8], trailer: &[u8]) -> Vec<u8> {
    let n = segs.len() + 1;
    let mut offset = (64 + 56 * n) as u64;
    let mut phdrs = vec![Phdr {
        p_type: 4,
        offset,
        vaddr: 0,
        paddr: 0,
        filesz: notes.len() as u64,
        memsz: notes.len() as u64,
        align: 4,
    }];
    let mut body = notes.to_vec();
    offset += notes.len() as u64;
    for s in segs {
        let pad = offset.next_multiple_of(16) - offset;
        body.resize(body.len() + pad as usize, 0);
        offset += pad;
        phdrs.push(Phdr {
            p_type: 1,
            offset,
            vaddr: 0xffff_ffff_8000_0000 + s.paddr,
            paddr: s.paddr,
            filesz: s.data.len() as u64,
            memsz: s.memsz,
            align: 16,
        });
        body.extend_from_slice(&s.data);
        offset += s.data.len() as u64;
    }
    body.extend_from_slice(trailer);
    elf_raw(&phdrs, &body)
}

/// Deterministic pseudo-random bytes (compressible a little, like code).
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 3 == 0 {
                0xe8 // x86 CALL: gives the BCJ filter something to do
            } else {
                (x % 16) as u8
            }
        })
        .collect()
}

/// A small kernel: text with the PVH entry inside it, data, and a bss.
pub fn kernel() -> (Vec<u8>, Vec<Seg>) {
    let segs = vec![
        Seg {
            paddr: 0x100_0000,
            data: bytes(1, 70_000),
            memsz: 70_000,
        },
        Seg {
            paddr: 0x120_0000,
            data: bytes(2, 5_000),
            memsz: 12_000,
        },
    ];
    (elf(&segs, &linux_notes(0x100_0040), &bytes(3, 3000)), segs)
}

pub fn pipe(cmd: &mut Command, input: &[u8]) -> Vec<u8> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("compressor runs (xz-utils and gzip are in every Debian)");
    let mut stdin = child.stdin.take().expect("stdin piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("compressor finishes");
    writer.join().expect("writer").expect("write to compressor");
    assert!(out.status.success());
    out.stdout
}

/// gzip, as Linux's `cmd_gzip` (`gzip -n -f -9`).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    pipe(Command::new("gzip").args(["-n", "-9", "-c"]), data)
}

/// xz as Linux's scripts/xz_wrap.sh for x86, with a 1 MiB dictionary.
pub fn xz(data: &[u8]) -> Vec<u8> {
    pipe(
        Command::new("xz").args(["--check=crc32", "--x86", "--lzma2=dict=1MiB", "-c"]),
        data,
    )
}

/// zstd by ruzstd's encoder.
pub fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

/// A minimal bzImage around `payload`, with Linux's 4-byte size trailer.
pub fn bzimage(payload: &[u8], uncompressed: usize) -> Vec<u8> {
    let mut p = payload.to_vec();
    p.extend_from_slice(&(uncompressed as u32).to_le_bytes());
    let pm_start = 4 * 512;
    let mut img = vec![0u8; pm_start + 32];
    img[0x1f1] = 3;
    img[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    img[0x202..0x206].copy_from_slice(b"HdrS");
    img[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    img[0x248..0x24c].copy_from_slice(&32u32.to_le_bytes());
    img[0x24c..0x250].copy_from_slice(&(p.len() as u32).to_le_bytes());
    img.extend_from_slice(&p);
    img
}

/// A kernel small enough for a fuzz seed.
pub fn small_kernel() -> Vec<u8> {
    let segs = [
        Seg {
            paddr: 0x100_0000,
            data: bytes(4, 1500),
            memsz: 1500,
        },
        Seg {
            paddr: 0x100_1000,
            data: bytes(5, 300),
            memsz: 4096,
        },
    ];
    elf(&segs, &linux_notes(0x100_0040), &bytes(6, 100))
}
