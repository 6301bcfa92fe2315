//! A real distribution kernel through [`xcp_kimage::load`]: Debian 12's
//! `linux-image-amd64` bzImage (xz + x86 BCJ), or any image named by
//! `XCP_TEST_VMLINUZ`, else the first `/boot/vmlinuz-*`. Skipped, with a
//! note, when there is none. Checks the PVH entry note, that the sink saw
//! exactly the ELF's segments, and dom0's peak heap during the load.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use xcp_kimage::{load, CountingSink, Limits};

/// Net bytes allocated and their high-water mark.
struct Counting;

static NET: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn grow(by: usize) {
    let now = NET.fetch_add(by as isize, Ordering::Relaxed) + by as isize;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards every call to `System` unchanged, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        NET.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grow(new_size);
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        NET.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// dom0's heap cost of loading a kernel: the decompressor's history (xz:
/// the dictionary, 32 MiB for Debian's kernel) plus at most this much of
/// everything else (decoder state, zstd's block scratch, the 32 KiB working
/// buffer, headers, notes).
const OVERHEAD_BOUND: isize = 2 << 20;

fn kernel() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("XCP_TEST_VMLINUZ") {
        return Some(p.into());
    }
    let mut found: Vec<_> = std::fs::read_dir("/boot")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .collect();
    found.sort();
    found.pop()
}

/// The heap counters are global: one measuring test at a time.
static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_real_kernel_loads_in_bounded_memory() {
    let _one = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let Some(path) = kernel() else {
        println!("note: no kernel (/boot/vmlinuz-* or XCP_TEST_VMLINUZ): test skipped");
        return;
    };
    let image = std::fs::read(&path).expect("kernel readable");
    let limits = Limits::default();
    let mut sink = CountingSink::default();

    let before = NET.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let loaded = load(&image, &limits, &mut sink).expect("the kernel loads");
    let peak = PEAK.load(Ordering::Relaxed) - before;

    let dictionary = match loaded.compression {
        xcp_kimage::Compression::Xz => {
            let Ok(xcp_kimage::Format::BzImage(bz)) = xcp_kimage::probe(&image) else {
                panic!("xz payload outside a bzImage");
            };
            xcp_kimage::xz_dictionary_size(&image[bz.payload]).expect("dictionary size") as isize
        }
        // ruzstd's buffer is at most twice the window, itself at most half
        // the bound (plus its block scratch, in the overhead below).
        xcp_kimage::Compression::Zstd => limits.max_dictionary as isize,
        _ => 0,
    };
    println!(
        "{}: {:?}, ELF {} bytes, {} segments, written {} zeroed {}, peak heap {} bytes \
         (history {} + other {}), PVH entry {:#x?}",
        path.display(),
        loaded.compression,
        loaded.elf_size,
        loaded.segments.len(),
        sink.written,
        sink.zeroed,
        peak,
        dictionary,
        peak - dictionary,
        loaded.notes.phys32_entry
    );
    let entry = loaded.pvh_entry().expect("a PVH entry note");
    assert!(loaded.paddr_range.contains(&u64::from(entry)));
    let filesz: u64 = loaded.segments.iter().map(|s| s.filesz).sum();
    let memsz: u64 = loaded.segments.iter().map(|s| s.memsz).sum();
    assert_eq!(sink.written, filesz);
    assert_eq!(sink.written + sink.zeroed, memsz);
    assert!(sink.largest_write <= xcp_kimage::CHUNK);
    assert!(
        peak <= dictionary + OVERHEAD_BOUND,
        "peak heap {peak} above dictionary {dictionary} + {OVERHEAD_BOUND}"
    );
    // Nothing held after the load but the result.
    assert!(NET.load(Ordering::Relaxed) - before < 64 * 1024);
}

#[test]
fn a_real_kernel_loads_with_a_lent_dictionary_of_the_probed_size() {
    let _one = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let Some(path) = kernel() else {
        println!("note: no kernel (/boot/vmlinuz-* or XCP_TEST_VMLINUZ): test skipped");
        return;
    };
    let image = std::fs::read(&path).expect("kernel readable");
    let Some(needed) = xcp_kimage::xz_dictionary_needed(&image).expect("headers readable") else {
        println!("note: {} is not xz: test skipped", path.display());
        return;
    };
    // What dom0 lends from guest RAM: exactly the probed size.
    let mut dictionary = vec![0u8; needed as usize];
    let limits = Limits::default();
    let mut sink = CountingSink::default();
    let before = NET.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let loaded = xcp_kimage::load_with_dictionary(&image, &limits, &mut dictionary, &mut sink)
        .expect("the kernel loads");
    let peak = PEAK.load(Ordering::Relaxed) - before;
    println!(
        "{}: dictionary {needed} bytes lent, peak heap {peak} bytes",
        path.display()
    );
    loaded.pvh_entry().expect("a PVH entry note");
    assert!(
        peak <= OVERHEAD_BOUND,
        "peak heap {peak} with the dictionary lent"
    );
}
