//! Against qemu-img (Debian package qemu-utils, which `cargo xtask`
//! installs): VHDs qemu-img makes read back as the raw disk, and qemu-img
//! reads the Writer's VHDs as the raw disk. Without qemu-img these tests
//! fail (they do not skip).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use xcp_vhd::{Kind, Limits, Writer, DEFAULT_BLOCK_SIZE};

const MIB: usize = 1 << 20;

fn qemu_img(args: &[&str]) -> std::process::Output {
    match Command::new("qemu-img").args(args).output() {
        Ok(out) => out,
        Err(e) => panic!(
            "qemu-img could not run ({e}): install the Debian package qemu-utils \
             (apt-get install qemu-utils; `cargo xtask run` installs it)"
        ),
    }
}

#[track_caller]
fn qemu_img_ok(args: &[&str]) -> std::process::Output {
    let out = qemu_img(args);
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("xcp-vhd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn path(&self, file: &str) -> String {
        self.0.join(file).to_str().expect("utf-8 path").to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// 9 MiB + 3 sectors (neither a block nor a CHS multiple): random data,
/// whole zero blocks (holes qemu-img leaves out), zero runs inside
/// blocks, and data in the last, partial block.
fn raw_disk(seed: u64) -> Vec<u8> {
    let size = 9 * MIB + 3 * 512;
    let mut disk = vec![0u8; size];
    let mut s = seed | 1;
    let mut fill = |range: std::ops::Range<usize>, disk: &mut Vec<u8>| {
        for b in &mut disk[range] {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            *b = s as u8;
        }
    };
    fill(0..MIB, &mut disk);
    fill(MIB + 4096..MIB + 8192, &mut disk);
    // Block 1 (2..4 MiB) and block 3 (6..8 MiB): holes.
    fill(5 * MIB - 512..5 * MIB + 512, &mut disk);
    fill(8 * MIB + 512..size - 512, &mut disk);
    disk
}

/// Reads the file in pieces of `step` bytes.
fn read_file(path: &str, disk_len: usize, step: usize) -> Run {
    let img = std::fs::read(path).expect("read the VHD");
    let cuts: Vec<usize> = (0..img.len()).step_by(step).collect();
    read_with(&img, img.len() as u64, &cuts, Limits::default(), disk_len)
}

fn check_qemu_made(subformat: &str, kind: Kind) {
    let dir = Scratch::new(subformat);
    let disk = raw_disk(7);
    let raw = dir.path("disk.raw");
    std::fs::write(&raw, &disk).expect("write raw");
    let vhd = dir.path("disk.vhd");
    let options = format!("subformat={subformat},force_size=on");
    qemu_img_ok(&[
        "convert", "-f", "raw", "-O", "vpc", "-o", &options, &raw, &vhd,
    ]);
    // In 16 KiB pieces, as HTTP would bring it, and in odd ones.
    let odd = read_file(&vhd, disk.len(), 1000 * 512 + 77);
    let run = read_file(&vhd, disk.len(), 16 << 10);
    assert_eq!(odd.result, run.result);
    assert!(odd.disk == run.disk);
    let summary = run.result.expect("qemu-img's VHD reads");
    assert_eq!(summary.virtual_size, disk.len() as u64);
    assert_eq!(summary.kind, kind);
    assert!(
        run.disk == disk,
        "the {subformat} VHD reads back as another disk"
    );
    if kind == Kind::Dynamic {
        // qemu-img leaves the zero blocks out (1 and 3 of 0..=4) and
        // marks every sector of the others present.
        assert_eq!(
            summary.data_bytes,
            disk.len() as u64 - 2 * DEFAULT_BLOCK_SIZE as u64
        );
    } else {
        assert_eq!(summary.data_bytes, disk.len() as u64);
    }
}

#[test]
fn reads_qemu_img_dynamic() {
    check_qemu_made("dynamic", Kind::Dynamic);
}

#[test]
fn reads_qemu_img_fixed() {
    check_qemu_made("fixed", Kind::Fixed);
}

fn allocated_blocks(disk: &[u8]) -> Vec<u32> {
    disk.chunks(DEFAULT_BLOCK_SIZE as usize)
        .enumerate()
        .filter(|(_, block)| block.iter().any(|&b| b != 0))
        .map(|(i, _)| i as u32)
        .collect()
}

#[test]
fn qemu_img_reads_the_writer() {
    let dir = Scratch::new("writer");
    let disk = raw_disk(11);
    let raw = dir.path("disk.raw");
    std::fs::write(&raw, &disk).expect("write raw");
    let allocated = allocated_blocks(&disk);
    assert_eq!(allocated, [0, 2, 4]);
    let writer = Writer::dynamic(disk.len() as u64, allocated, [0x42; 16], 0x3000_0000).unwrap();
    let img = write_all(writer, &disk, 16 << 10);
    let vhd = dir.path("ours.vhd");
    std::fs::write(&vhd, &img).expect("write vhd");

    // qemu's vpc driver has no checker: `check` opens the image (footer,
    // header, BAT) and then says so; anything else is a failure.
    let out = qemu_img(&["check", "-f", "vpc", &vhd]);
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() || said.contains("does not support checks"),
        "qemu-img check: {said}"
    );

    let info = qemu_img_ok(&["info", "-f", "vpc", "--output=json", &vhd]);
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains(&format!("\"virtual-size\": {}", disk.len())),
        "qemu-img info: {info}"
    );

    let back = dir.path("back.raw");
    qemu_img_ok(&["convert", "-f", "vpc", "-O", "raw", &vhd, &back]);
    let back = std::fs::read(&back).expect("read back");
    assert_eq!(back.len(), disk.len());
    assert!(
        back == disk,
        "qemu-img reads the Writer's VHD as another disk"
    );
    qemu_img_ok(&["compare", "-f", "vpc", "-F", "raw", &vhd, &raw]);
}

#[test]
fn qemu_img_reads_an_empty_and_a_full_writer_disk() {
    let dir = Scratch::new("edges");
    for (name, disk, allocated) in [
        ("empty", vec![0u8; 3 * MIB], vec![]),
        (
            "full",
            (0..4 * MIB)
                .map(|i| (i / 512) as u8 | 1)
                .collect::<Vec<u8>>(),
            vec![0, 1],
        ),
    ] {
        let writer = Writer::dynamic(disk.len() as u64, allocated, [1; 16], 0).unwrap();
        let img = write_all(writer, &disk, 65536);
        let vhd = dir.path(&format!("{name}.vhd"));
        std::fs::write(&vhd, &img).expect("write vhd");
        let back = dir.path(&format!("{name}.raw"));
        qemu_img_ok(&["convert", "-f", "vpc", "-O", "raw", &vhd, &back]);
        assert!(std::fs::read(&back).expect("read back") == disk, "{name}");
    }
    assert!(Path::new(&dir.0).is_dir());
}
