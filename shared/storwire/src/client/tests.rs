use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;

use super::*;
use crate::error_text;

/// A model stordom behind the link, answering in memory; `lie` rewrites
/// its replies to test the client's checks.
#[derive(Default)]
struct Model {
    log: Vec<u8>,
    staged: Option<(u64, Vec<u8>)>,
    vdis: BTreeMap<Uuid, u64>,
    replies: VecDeque<Reply>,
    now: u64,
    /// Answer nothing (stordom died).
    silent: bool,
    lie: Option<Lie>,
    sent: usize,
}

impl Model {
    fn answer(&mut self, op: Op) -> Result<Answer, StorError> {
        Ok(match op {
            Op::Status => Answer::Status(Status {
                log_len: self.log.len() as u64,
                read_only: None,
                formatted: false,
            }),
            Op::LogRead { offset, max } => {
                let from = (offset as usize).min(self.log.len());
                let to = (from + max as usize).min(self.log.len());
                Answer::LogData {
                    bytes: self.log[from..to].to_vec(),
                    log_len: self.log.len() as u64,
                }
            }
            Op::LogAppend { at, bytes } => {
                let len = self.log.len() as u64;
                if len < at {
                    return Err(StorError::LogLost { log_len: len });
                }
                if len < at + bytes.len() as u64 {
                    self.log.truncate(at as usize);
                    self.log.extend_from_slice(&bytes);
                }
                Answer::Done
            }
            Op::LogSync => Answer::Done,
            Op::LogTruncate { len } => {
                self.log.truncate(len as usize);
                Answer::Done
            }
            Op::LogReplaceBegin { len } => {
                self.staged = Some((len, Vec::new()));
                Answer::Done
            }
            Op::LogReplaceChunk { bytes } => {
                let Some((_, staged)) = self.staged.as_mut() else {
                    return Err(StorError::Protocol(error_text("no begin")));
                };
                staged.extend_from_slice(&bytes);
                Answer::Done
            }
            Op::LogReplaceCommit => {
                let (len, staged) = self.staged.take().expect("staged");
                assert_eq!(len, staged.len() as u64);
                self.log = staged;
                Answer::Done
            }
            Op::SrStats => Answer::Stats(Stats {
                physical_size: 1 << 30,
                physical_utilisation: 4096,
                virtual_allocation: self.vdis.values().sum(),
            }),
            Op::VdiList { after } => {
                let vdis: Vec<Vdi> = self
                    .vdis
                    .iter()
                    .filter(|(u, _)| after.is_none_or(|a| **u > a))
                    .take(VDIS_PER_REPLY + 1)
                    .map(|(u, s)| Vdi {
                        uuid: *u,
                        virtual_size: *s,
                        physical_utilisation: 0,
                        read_only: false,
                        parent: None,
                    })
                    .collect();
                let more = vdis.len() > VDIS_PER_REPLY;
                Answer::Vdis {
                    vdis: vdis.into_iter().take(VDIS_PER_REPLY).collect(),
                    more,
                }
            }
            Op::VdiCreate { uuid, virtual_size } => {
                if self.vdis.insert(uuid, virtual_size).is_some() {
                    return Err(StorError::Exists);
                }
                Answer::Done
            }
            Op::VdiDestroy { uuid } => {
                self.vdis.remove(&uuid).ok_or(StorError::NotFound)?;
                Answer::Done
            }
            Op::VdiResize { .. } | Op::VdiSnapshot { .. } | Op::VdiClone { .. } => Answer::Done,
            Op::ImportBegin { len, .. } => Answer::Transfer { id: 1, len },
            Op::ImportData { .. } | Op::ImportEnd { .. } | Op::TransferAbort { .. } => Answer::Done,
            Op::ExportBegin { .. } => Answer::Transfer { id: 2, len: 4096 },
            Op::ExportData { max, .. } => Answer::Data {
                bytes: alloc::vec![7; max as usize],
            },
        })
    }
}

impl Link for Model {
    fn send(&mut self, request: &Request) -> Result<(), LinkError> {
        self.sent += 1;
        if self.silent {
            return Ok(());
        }
        let result = self.answer(request.op.clone());
        let mut reply = Reply {
            id: request.id,
            result,
        };
        if let Some(lie) = self.lie {
            lie(&mut reply);
        }
        self.replies.push_back(reply);
        Ok(())
    }

    fn recv(&mut self) -> Result<Option<Reply>, LinkError> {
        Ok(self.replies.pop_front())
    }

    fn wait(&mut self, deadline_ns: u64) {
        self.now = deadline_ns;
    }

    fn now_ns(&self) -> u64 {
        self.now
    }
}

/// A rewrite of stordom's replies.
type Lie = fn(&mut Reply);

fn client() -> Client<Model> {
    Client::new(Model::default(), 1_000)
}

#[test]
fn the_log_round_trips_in_chunks() {
    let mut c = client();
    let bytes: Vec<u8> = (0..3 * MAX_CHUNK + 17).map(|i| i as u8).collect();
    c.log_append(&bytes[..10]).unwrap();
    c.log_append(&bytes[10..]).unwrap();
    c.log_sync().unwrap();
    assert_eq!(c.log_len(), bytes.len() as u64);
    assert_eq!(c.link_mut().log, bytes);
    let mut fresh = Client::new(core::mem::take(c.link_mut()), 1_000);
    assert_eq!(fresh.log_read_all(1 << 20).unwrap(), bytes);
    assert_eq!(fresh.log_len(), bytes.len() as u64);
    assert_eq!(
        fresh.log_read_all(100),
        Err(CallError::TooLarge),
        "a log past the limit is refused"
    );
    fresh.log_truncate(5).unwrap();
    assert_eq!(fresh.status().unwrap().log_len, 5);
    fresh.log_replace(&bytes[..MAX_CHUNK + 1]).unwrap();
    assert_eq!(fresh.link_mut().log, &bytes[..MAX_CHUNK + 1]);
    assert_eq!(fresh.log_len(), MAX_CHUNK as u64 + 1);
}

#[test]
fn an_append_resent_to_a_rebuilt_stordom_is_applied_once() {
    let mut c = client();
    c.log_append(b"abc").unwrap();
    // The same request again (dom0 resends after stordom came back): the
    // bytes are there already.
    let again = c.call(Op::LogAppend {
        at: 0,
        bytes: b"abc".to_vec(),
    });
    assert_eq!(again, Ok(Answer::Done));
    assert_eq!(c.link_mut().log, b"abc");
    // A stordom that lost acknowledged bytes says so.
    c.link_mut().log.clear();
    assert_eq!(
        c.log_append(b"d"),
        Err(CallError::Refused(StorError::LogLost { log_len: 0 }))
    );
}

#[test]
fn a_silent_stordom_times_out_and_its_late_reply_is_dropped() {
    let mut c = client();
    c.link_mut().silent = true;
    assert_eq!(c.log_sync(), Err(CallError::Timeout));
    // The late reply to that request arrives before the next one's.
    c.link_mut().silent = false;
    c.link_mut().replies.push_back(Reply {
        id: 1,
        result: Ok(Answer::Stats(Stats {
            physical_size: 0,
            physical_utilisation: 0,
            virtual_allocation: 0,
        })),
    });
    assert_eq!(c.log_sync(), Ok(()));
}

#[test]
fn replies_out_of_bounds_are_refused() {
    let cases: [(Lie, &str); 4] = [
        (
            |r| {
                if let Ok(Answer::LogData { bytes, .. }) = &mut r.result {
                    bytes.push(0);
                }
            },
            "log data of the wrong length",
        ),
        (
            |r| {
                if let Ok(Answer::LogData { log_len, .. }) = &mut r.result {
                    *log_len = 0;
                }
            },
            "",
        ),
        (|r| r.result = Ok(Answer::Done), "not log data"),
        (
            |r| {
                if let Ok(Answer::LogData { bytes, log_len }) = &mut r.result {
                    *log_len += 1;
                    bytes.clear();
                }
            },
            "log data of the wrong length",
        ),
    ];
    for (lie, what) in cases {
        let mut c = client();
        c.link_mut().log = vec![7; 100];
        c.link_mut().lie = Some(lie);
        let got = c.log_read_all(1 << 20);
        if what.is_empty() {
            assert!(got.is_err(), "{got:?}");
        } else {
            assert_eq!(got, Err(CallError::Unexpected(what)));
        }
    }
}

#[test]
fn vdi_listings_page_and_must_ascend() {
    let mut c = client();
    for i in 0..(2 * VDIS_PER_REPLY + 3) as u16 {
        let mut uuid = [0u8; 16];
        uuid[..2].copy_from_slice(&i.to_be_bytes());
        uuid[15] = 1;
        c.vdi_create(uuid, 512).unwrap();
    }
    let all = c.vdi_list(10_000).unwrap();
    assert_eq!(all.len(), 2 * VDIS_PER_REPLY + 3);
    assert!(all.windows(2).all(|w| w[0].uuid < w[1].uuid));
    assert_eq!(c.vdi_list(10), Err(CallError::TooLarge));
    assert_eq!(
        c.vdi_create(all[0].uuid, 512),
        Err(CallError::Refused(StorError::Exists))
    );
    c.link_mut().lie = Some(|r| {
        if let Ok(Answer::Vdis { vdis, .. }) = &mut r.result {
            vdis.reverse();
        }
    });
    assert_eq!(
        c.vdi_list(10_000),
        Err(CallError::Unexpected("a VDI list out of order"))
    );
    c.link_mut().lie = Some(|r| {
        if let Ok(Answer::Vdis { vdis, more }) = &mut r.result {
            vdis.clear();
            *more = true;
        }
    });
    assert_eq!(
        c.vdi_list(10_000),
        Err(CallError::Unexpected("a VDI list out of bounds"))
    );
}

#[test]
fn a_replacement_past_the_bound_is_not_sent() {
    let mut c = client();
    let big = vec![0u8; MAX_REPLACE_BYTES as usize + 1];
    assert_eq!(c.log_replace(&big), Err(CallError::TooLarge));
    assert_eq!(c.link_mut().sent, 0);
}

#[test]
fn transfer_replies_are_checked() {
    let mut c = client();
    assert_eq!(c.import_begin([1; 16], crate::Format::Raw, 4096), Ok(1));
    // Data in chunks of at most MAX_CHUNK.
    c.import_data(1, &alloc::vec![0; MAX_CHUNK * 2 + 1])
        .expect("data");
    c.import_end(1).expect("end");
    assert_eq!(c.export_begin([1; 16], crate::Format::Vhd), Ok((2, 4096)));
    // Asked more than a chunk: a chunk.
    assert_eq!(c.export_data(2, u32::MAX).map(|b| b.len()), Ok(MAX_CHUNK));
    // A stordom that sends more than asked, or echoes another length.
    c.link_mut().lie = Some(|r: &mut Reply| {
        if let Ok(Answer::Data { bytes }) = &mut r.result {
            bytes.push(0);
        }
        if let Ok(Answer::Transfer { len, .. }) = &mut r.result {
            *len += 1;
        }
    });
    assert!(matches!(
        c.export_data(2, 512),
        Err(CallError::Unexpected(_))
    ));
    assert!(matches!(
        c.import_begin([1; 16], crate::Format::Raw, 4096),
        Err(CallError::Unexpected(_))
    ));
}
