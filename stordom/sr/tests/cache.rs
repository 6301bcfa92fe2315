//! The node cache under a guest's write pattern: more metadata nodes than
//! the cache holds, touched again and again across commits (a guest
//! filling a VDI with fsync'd files, as `guests_disk_restart` does). Every
//! write and read must succeed: the cache may drop any node but the one
//! just read.

use xcp_sr::fake::MemDisk;
use xcp_sr::Sr;

#[test]
fn a_vdi_filled_with_synced_writes_never_runs_out_of_cache() {
    let mut sr = Sr::format(MemDisk::new(1 << 19))
        .map_err(|(e, _)| e)
        .unwrap();
    let vdi = [7u8; 16];
    sr.create(vdi, 256 << 20).unwrap();
    let chunk = vec![0x5au8; 128 << 10];
    // Files of 512 KiB spread over the VDI (as ext4 spreads them), each
    // followed by a small metadata write near the start and a flush.
    for i in 0..200u64 {
        let sector = (i * 7919 % 1900) * 256;
        for part in 0..4 {
            sr.write(vdi, sector + part * 256, &chunk)
                .unwrap_or_else(|e| panic!("file {i} part {part}: {e:?}"));
        }
        sr.write(vdi, i % 64 * 8, &chunk[..4096]).unwrap();
        sr.flush().unwrap();
    }
    let mut back = vec![0u8; 128 << 10];
    for i in 0..200u64 {
        let sector = (i * 7919 % 1900) * 256;
        sr.read(vdi, sector, &mut back)
            .unwrap_or_else(|e| panic!("read {i}: {e:?}"));
        assert_eq!(back, chunk);
    }
    sr.check().unwrap();
}
