//! Arbitrary bytes, and arbitrary damage to valid images, never panic the
//! loader and never write outside what the headers declared.

mod common;

use common::*;
use proptest::prelude::*;
use xcp_kimage::{load, Limits, MemorySink};

/// Small bounds so a lucky input cannot run long.
fn limits() -> Limits {
    Limits {
        max_output: 1 << 20,
        max_dictionary: 1 << 20,
        ..Limits::default()
    }
}

fn valid_images() -> Vec<Vec<u8>> {
    let (elf, _) = kernel();
    vec![
        elf.clone(),
        bzimage(&gzip(&elf), elf.len()),
        bzimage(&xz(&elf), elf.len()),
        bzimage(&zstd(&elf), elf.len()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = load(&data, &limits(), &mut MemorySink::new(0, 1 << 16));
    }

    #[test]
    fn arbitrary_bytes_behind_each_magic_never_panic(
        which in 0usize..5,
        data in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let magic: &[u8] = [
            &b"\x7fELF\x02\x01\x01"[..],
            &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3],
            &[0xfd, b'7', b'z', b'X', b'Z', 0, 0, 1],
            &[0x28, 0xb5, 0x2f, 0xfd],
            &b"\x7fELF"[..],
        ][which];
        let mut payload = magic.to_vec();
        payload.extend_from_slice(&data);
        let image = if which == 0 { payload } else { bzimage(&payload, 0) };
        let _ = load(&image, &limits(), &mut MemorySink::new(0, 1 << 16));
    }

    #[test]
    fn damaged_valid_images_never_panic(
        which in 0usize..4,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        thread_local!(static IMAGES: Vec<Vec<u8>> = valid_images());
        let mut image = IMAGES.with(|i| i[which].clone());
        for (at, x) in flips {
            let i = at.index(image.len());
            image[i] ^= x | 1;
        }
        let mut m = MemorySink::new(0x100_0000, 4 << 20);
        let _ = load(&image, &limits(), &mut m);
    }
}
