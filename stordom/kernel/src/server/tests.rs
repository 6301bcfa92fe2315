use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;

use xcp_storwire::client::{CallError, Client, Link, LinkError};
use xcp_storwire::Format;

use super::*;

/// An SR in memory that keeps what was flushed apart from what was not.
#[derive(Default)]
struct MemRepo {
    log: Vec<u8>,
    durable_log: Vec<u8>,
    vdis: BTreeMap<Uuid, (u64, bool, Option<Uuid>)>,
    durable_vdis: BTreeMap<Uuid, (u64, bool, Option<Uuid>)>,
    flushes: usize,
    broken: Option<String>,
    /// Written sectors, by VDI and sector number.
    sectors: BTreeMap<(Uuid, u64), Vec<u8>>,
}

impl Repo for MemRepo {
    fn log_len(&self) -> u64 {
        self.log.len() as u64
    }
    fn log_read(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, StorError> {
        let from = (offset as usize).min(self.log.len());
        let n = buf.len().min(self.log.len() - from);
        buf[..n].copy_from_slice(&self.log[from..from + n]);
        Ok(n)
    }
    fn log_append(&mut self, bytes: &[u8]) -> Result<(), StorError> {
        if let Some(why) = &self.broken {
            return Err(StorError::ReadOnly(why.clone()));
        }
        self.log.extend_from_slice(bytes);
        Ok(())
    }
    fn log_truncate(&mut self, len: u64) -> Result<(), StorError> {
        self.log.truncate(len as usize);
        Ok(())
    }
    fn log_replace(&mut self, bytes: &[u8]) -> Result<(), StorError> {
        self.log = bytes.to_vec();
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StorError> {
        self.flushes += 1;
        self.durable_log = self.log.clone();
        self.durable_vdis = self.vdis.clone();
        Ok(())
    }
    fn read_only(&self) -> Option<String> {
        self.broken.clone()
    }
    fn stats(&self) -> Stats {
        Stats {
            physical_size: 1 << 30,
            physical_utilisation: 0,
            virtual_allocation: self.vdis.values().map(|v| v.0).sum(),
        }
    }
    fn vdis(&self) -> Vec<Vdi> {
        // Deliberately not in uuid order: the server sorts.
        self.vdis
            .iter()
            .rev()
            .map(|(u, (size, ro, parent))| Vdi {
                uuid: *u,
                virtual_size: *size,
                physical_utilisation: 0,
                read_only: *ro,
                parent: *parent,
            })
            .collect()
    }
    fn create(&mut self, uuid: Uuid, virtual_size: u64) -> Result<(), StorError> {
        if self.vdis.contains_key(&uuid) {
            return Err(StorError::Exists);
        }
        self.vdis.insert(uuid, (virtual_size, false, None));
        Ok(())
    }
    fn destroy(&mut self, uuid: Uuid) -> Result<(), StorError> {
        self.vdis
            .remove(&uuid)
            .map(|_| ())
            .ok_or(StorError::NotFound)
    }
    fn resize(&mut self, uuid: Uuid, virtual_size: u64) -> Result<(), StorError> {
        self.vdis.get_mut(&uuid).ok_or(StorError::NotFound)?.0 = virtual_size;
        Ok(())
    }
    fn snapshot(&mut self, src: Uuid, new: Uuid) -> Result<(), StorError> {
        let size = self.vdis.get(&src).ok_or(StorError::NotFound)?.0;
        self.vdis.insert(new, (size, true, Some(src)));
        Ok(())
    }
    fn clone_vdi(&mut self, src: Uuid, new: Uuid) -> Result<(), StorError> {
        let size = self.vdis.get(&src).ok_or(StorError::NotFound)?.0;
        self.vdis.insert(new, (size, false, Some(src)));
        Ok(())
    }
    fn vdi_info(&self, uuid: Uuid) -> Result<(u64, bool), StorError> {
        let (size, ro, _) = self.vdis.get(&uuid).ok_or(StorError::NotFound)?;
        Ok((*size, !*ro))
    }
    fn vdi_read(&mut self, uuid: Uuid, offset: u64, buf: &mut [u8]) -> Result<(), StorError> {
        for (i, sector) in buf.chunks_mut(512).enumerate() {
            match self.sectors.get(&(uuid, offset / 512 + i as u64)) {
                Some(d) => sector.copy_from_slice(d),
                None => sector.fill(0),
            }
        }
        Ok(())
    }
    fn vdi_write(&mut self, uuid: Uuid, offset: u64, bytes: &[u8]) -> Result<(), StorError> {
        let size = self.vdi_info(uuid)?.0;
        if offset + bytes.len() as u64 > size
            || !offset.is_multiple_of(512)
            || !bytes.len().is_multiple_of(512)
        {
            return Err(StorError::Invalid("out of range".into()));
        }
        for (i, sector) in bytes.chunks(512).enumerate() {
            self.sectors
                .insert((uuid, offset / 512 + i as u64), sector.to_vec());
        }
        Ok(())
    }
    fn vdi_discard(&mut self, uuid: Uuid, offset: u64, len: u64) -> Result<(), StorError> {
        for s in offset / 512..(offset + len) / 512 {
            self.sectors.remove(&(uuid, s));
        }
        Ok(())
    }
    fn next_allocated(&mut self, uuid: Uuid, from: u64) -> Result<Option<u64>, StorError> {
        Ok(self
            .sectors
            .range((uuid, from / 512)..=(uuid, u64::MAX))
            .next()
            .map(|((_, s), _)| (s * 512).max(from)))
    }
}

/// dom0's client wired straight to the server, as the channel would.
struct Direct {
    server: Server<MemRepo>,
    replies: VecDeque<Reply>,
}

impl Link for Direct {
    fn send(&mut self, request: &Request) -> Result<(), LinkError> {
        let reply = self.server.handle(request.clone());
        self.replies.push_back(reply);
        Ok(())
    }
    fn recv(&mut self) -> Result<Option<Reply>, LinkError> {
        Ok(self.replies.pop_front())
    }
    fn wait(&mut self, _deadline_ns: u64) {}
    fn now_ns(&self) -> u64 {
        0
    }
}

fn client() -> Client<Direct> {
    Client::new(
        Direct {
            server: Server::new(MemRepo::default(), true),
            replies: VecDeque::new(),
        },
        1,
    )
}

fn repo(c: &mut Client<Direct>) -> &mut MemRepo {
    c.link_mut().server.repo_mut()
}

#[test]
fn the_log_is_durable_once_sync_answers() {
    let mut c = client();
    assert!(c.status().unwrap().formatted);
    let bytes: Vec<u8> = (0..2 * MAX_CHUNK + 5).map(|i| (i * 7) as u8).collect();
    c.log_append(&bytes).unwrap();
    assert!(
        repo(&mut c).durable_log.is_empty(),
        "not durable before sync"
    );
    c.log_sync().unwrap();
    assert_eq!(repo(&mut c).durable_log, bytes);
    assert_eq!(c.log_read_all(1 << 20).unwrap(), bytes);
    c.log_truncate(3).unwrap();
    assert_eq!(repo(&mut c).durable_log, &bytes[..3], "truncate is durable");
    c.log_replace(&bytes[..MAX_CHUNK + 9]).unwrap();
    assert_eq!(
        repo(&mut c).durable_log,
        &bytes[..MAX_CHUNK + 9],
        "replace is durable"
    );
}

#[test]
fn appends_are_applied_once_and_lost_bytes_are_reported() {
    let mut c = client();
    let mut server = Server::new(MemRepo::default(), false);
    let append = |at: u64, bytes: &[u8]| Request {
        id: 1,
        op: Op::LogAppend {
            at,
            bytes: bytes.to_vec(),
        },
    };
    assert_eq!(server.handle(append(0, b"abc")).result, Ok(Answer::Done));
    assert_eq!(server.handle(append(0, b"abc")).result, Ok(Answer::Done));
    assert_eq!(server.repo_mut().log, b"abc");
    // A resend overlapping the end: cut back to `at` and appended again.
    assert_eq!(server.handle(append(2, b"cd")).result, Ok(Answer::Done));
    assert_eq!(server.repo_mut().log, b"abcd");
    assert_eq!(
        server.handle(append(9, b"x")).result,
        Err(StorError::LogLost { log_len: 4 })
    );
    let big = vec![0u8; MAX_CHUNK + 1];
    assert!(matches!(
        server.handle(append(4, &big)).result,
        Err(StorError::Protocol(_))
    ));
    assert_eq!(server.repo_mut().log, b"abcd");
    // The client's own appends go through the same path.
    c.log_append(b"xyz").unwrap();
    assert_eq!(repo(&mut c).log, b"xyz");
}

#[test]
fn replacement_staging_is_bounded_and_ordered() {
    let mut s = Server::new(MemRepo::default(), false);
    let mut call = |op: Op| s.handle(Request { id: 7, op }).result;
    assert!(matches!(
        call(Op::LogReplaceChunk { bytes: vec![1] }),
        Err(StorError::Protocol(_))
    ));
    assert!(matches!(
        call(Op::LogReplaceCommit),
        Err(StorError::Protocol(_))
    ));
    assert_eq!(
        call(Op::LogReplaceBegin {
            len: MAX_REPLACE_BYTES + 1
        }),
        Err(StorError::NoSpace)
    );
    assert_eq!(call(Op::LogReplaceBegin { len: 2 }), Ok(Answer::Done));
    assert_eq!(
        call(Op::LogReplaceChunk { bytes: vec![1] }),
        Ok(Answer::Done)
    );
    assert!(
        matches!(call(Op::LogReplaceCommit), Err(StorError::Protocol(_))),
        "short of its length"
    );
    assert_eq!(call(Op::LogReplaceBegin { len: 1 }), Ok(Answer::Done));
    assert!(
        matches!(
            call(Op::LogReplaceChunk { bytes: vec![1, 2] }),
            Err(StorError::Protocol(_))
        ),
        "past its length"
    );
    assert!(
        matches!(call(Op::LogReplaceCommit), Err(StorError::Protocol(_))),
        "the overrun dropped the staging"
    );
    assert_eq!(s.repo_mut().flushes, 0, "nothing was replaced");
}

#[test]
fn vdi_operations_are_durable_and_listed_in_pages() {
    let mut c = client();
    let n = VDIS_PER_REPLY + 2;
    for i in 0..n as u16 {
        let mut uuid = [9u8; 16];
        uuid[..2].copy_from_slice(&i.to_be_bytes());
        c.vdi_create(uuid, 1 << 20).unwrap();
    }
    assert_eq!(repo(&mut c).durable_vdis.len(), n);
    let list = c.vdi_list(10_000).unwrap();
    assert_eq!(list.len(), n);
    let first = list[0].uuid;
    c.vdi_snapshot(first, [1; 16]).unwrap();
    c.vdi_clone(first, [2; 16]).unwrap();
    c.vdi_resize(first, 2 << 20).unwrap();
    c.vdi_destroy(list[1].uuid).unwrap();
    let durable = &repo(&mut c).durable_vdis;
    assert_eq!(durable[&[1; 16]], (1 << 20, true, Some(first)));
    assert_eq!(durable[&[2; 16]], (1 << 20, false, Some(first)));
    assert_eq!(durable[&first].0, 2 << 20);
    assert!(!durable.contains_key(&list[1].uuid));
    assert_eq!(
        c.vdi_destroy(list[1].uuid),
        Err(CallError::Refused(StorError::NotFound))
    );
    assert_eq!(
        c.sr_stats().unwrap().virtual_allocation,
        (n as u64 - 1) * (1 << 20) + (1 << 20) + 2 * (1 << 20)
    );
}

#[test]
fn a_read_only_sr_says_why_and_refuses_writes() {
    let mut c = client();
    repo(&mut c).broken = Some(String::from("block 7: bad checksum"));
    assert_eq!(
        c.status().unwrap().read_only.as_deref(),
        Some("block 7: bad checksum")
    );
    assert!(matches!(
        c.log_append(b"x"),
        Err(CallError::Refused(StorError::ReadOnly(_)))
    ));
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// An image of `len` bytes: noise with a zero run in the middle.
fn holey_image(len: usize) -> Vec<u8> {
    let mut image = noise(len, 7);
    image[len / 3..2 * len / 3].fill(0);
    image
}

fn import(c: &mut Client<Direct>, uuid: Uuid, format: Format, image: &[u8], piece: usize) {
    let id = c
        .import_begin(uuid, format, image.len() as u64)
        .expect("begin");
    for chunk in image.chunks(piece) {
        c.import_data(id, chunk).expect("data");
    }
    c.import_end(id).expect("end");
}

fn export(c: &mut Client<Direct>, uuid: Uuid, format: Format, piece: u32) -> Vec<u8> {
    let (id, len) = c.export_begin(uuid, format).expect("begin");
    let mut out = Vec::new();
    loop {
        let bytes = c.export_data(id, piece).expect("data");
        if bytes.is_empty() {
            break;
        }
        out.extend_from_slice(&bytes);
    }
    assert_eq!(out.len() as u64, len, "the announced length");
    out
}

#[test]
fn a_raw_image_goes_in_and_out_whole_and_its_zeros_stay_holes() {
    let mut c = client();
    let (a, size) = ([1u8; 16], 3 << 20);
    c.vdi_create(a, size).expect("create");
    let image = holey_image(2 << 20);
    let flushes = repo(&mut c).flushes;
    import(&mut c, a, Format::Raw, &image, 12_345);
    assert_eq!(
        repo(&mut c).flushes,
        flushes + 1,
        "durable once, at the end"
    );
    let back = export(&mut c, a, Format::Raw, 16 * 1024);
    assert_eq!(back.len() as u64, size);
    assert_eq!(&back[..image.len()], &image[..]);
    assert!(back[image.len()..].iter().all(|&b| b == 0));
    // Whole zero clusters were discarded, not written.
    let held = repo(&mut c).sectors.len() * 512;
    assert!(held < image.len() * 3 / 4, "{held} bytes held");
    assert_eq!(c.link_mut().server.transfers.len(), 0);
}

#[test]
fn a_vhd_export_imports_back_as_the_same_disk() {
    let mut c = client();
    let (a, b, size) = ([1u8; 16], [2u8; 16], 5 << 20);
    c.vdi_create(a, size).expect("create");
    c.vdi_create(b, size).expect("create");
    let image = holey_image(4 << 20);
    import(&mut c, a, Format::Raw, &image, 32 * 1024);
    let vhd = export(&mut c, a, Format::Vhd, 32 * 1024);
    assert_eq!(&vhd[..8], b"conectix");
    assert!(
        vhd.len() < size as usize,
        "holes are left out: {}",
        vhd.len()
    );
    // Old contents of `b` are replaced whole, holes included.
    let id = c.import_begin(b, Format::Raw, 512).expect("begin");
    c.import_data(id, &[0xaa; 512]).expect("data");
    c.import_end(id).expect("end");
    repo(&mut c)
        .vdi_write(b, 2 << 20, &[0x55; 512])
        .expect("old contents");
    import(&mut c, b, Format::Vhd, &vhd, 7_777);
    let back = export(&mut c, b, Format::Raw, 32 * 1024);
    assert_eq!(&back[..image.len()], &image[..]);
    assert!(back[image.len()..].iter().all(|&x| x == 0));
}

#[test]
fn transfers_are_refused_with_a_reason() {
    let mut c = client();
    let (a, size) = ([1u8; 16], 1 << 20);
    c.vdi_create(a, size).expect("create");
    let refused = |r: Result<u32, CallError>| match r {
        Err(CallError::Refused(e)) => e,
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        refused(c.import_begin(a, Format::Raw, 1000)),
        StorError::Invalid(_)
    ));
    assert!(matches!(
        refused(c.import_begin(a, Format::Raw, 2 << 20)),
        StorError::Invalid(_)
    ));
    assert_eq!(
        refused(c.import_begin([9; 16], Format::Raw, 512)),
        StorError::NotFound
    );
    c.vdi_snapshot(a, [3; 16]).expect("snapshot");
    assert!(matches!(
        refused(c.import_begin([3; 16], Format::Raw, 512)),
        StorError::ReadOnly(_)
    ));
    // Past its length, and short at its end.
    let id = c.import_begin(a, Format::Raw, 1024).expect("begin");
    assert!(matches!(
        c.import_data(id, &[1; 2048]),
        Err(CallError::Refused(StorError::Protocol(_)))
    ));
    let id = c.import_begin(a, Format::Raw, 1024).expect("begin");
    c.import_data(id, &[1; 512]).expect("data");
    assert!(matches!(
        c.import_end(id),
        Err(CallError::Refused(StorError::Invalid(_)))
    ));
    assert!(matches!(
        c.import_data(id, &[1; 512]),
        Err(CallError::Refused(StorError::Protocol(_)))
    ));
    // A VHD that is not one.
    let id = c.import_begin(a, Format::Vhd, 4096).expect("begin");
    let e = c
        .import_data(id, &[0x41; 4096])
        .and_then(|()| c.import_end(id));
    match e {
        Err(CallError::Refused(StorError::Invalid(why))) => assert!(why.contains("VHD"), "{why}"),
        other => panic!("{other:?}"),
    }
    // At most MAX_TRANSFERS at once; an abort frees one.
    let ids: Vec<u32> = (0..xcp_storwire::MAX_TRANSFERS)
        .map(|_| c.export_begin(a, Format::Raw).expect("begin").0)
        .collect();
    assert!(matches!(
        c.export_begin(a, Format::Raw),
        Err(CallError::Refused(StorError::NoSpace))
    ));
    c.transfer_abort(ids[0]).expect("abort");
    c.export_begin(a, Format::Raw).expect("room again");
    assert!(matches!(
        c.export_data(ids[1], 100),
        Err(CallError::Refused(StorError::Invalid(_)))
    ));
}
