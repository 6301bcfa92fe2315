//! `netfront-fuzz[=<seed>]`: a netfront gone bad, as a XenAPI VM's guest
//! with a VIF. It connects to its backend (netdom) the way a netfront
//! does, then writes garbage into its rings until the backend
//! disconnects it, closes, starts again with fresh rings, and does it
//! again, for [`ROUNDS`] rounds.
//!
//! Read first: xen/include/public/io/netif.h, io/ring.h, io/xenbus.h;
//! netdom/netback/DESIGN.md ("Transmit checks": what must disconnect).
//!
//! Each round first sends a well-formed ARP request (answered
//! `NETIF_RSP_OKAY`), then packets that are wrong but legal (runts, bogus
//! grants), one at a time: each must come back answered with
//! `NETIF_RSP_ERROR` and its id while the VIF stays connected. Then the
//! garbage. It comes from a deterministic PRNG (splitmix64) seeded from the
//! command line, so a failing seed replays. Each burst of it is one attack:
//! random bytes in slots and `req_prod`, `req_prod` far ahead, a fragment
//! of size 0, `offset + size` past the page, more than 18 slots, a first
//! slot splitting the Ethernet header, fragments longer than the packet,
//! extra info of a bad type, garbage in the rx ring followed by the ARP
//! request (QEMU's gateway answers: the reply finds the rx ring broken;
//! round 2 always starts with it), or a well-formed packet with a bogus
//! grant (answered with an error, not a disconnect).
//!
//! Log lines the QEMU case looks for (the console is relayed into dom0's
//! log as `[<vm name>] ...`): `netfront-fuzz: round <r>: connected`,
//! `netfront-fuzz: round <r>: an ARP request sent, 16 runts and bogus
//! grants answered with errors, still connected`, `netfront-fuzz: backend disconnected us
//! (state 5)`,
//! `netfront-fuzz: done, <n> disconnects`. It never panics on the
//! backend's doing and every wait is bounded: a failure is logged as
//! `netfront-fuzz: gave up: ...` and the domain idles.

use alloc::format;
use alloc::string::{String, ToString};

use xcp_runtime::evtchn;
use xcp_runtime::gnttab;
use xcp_runtime::paging::Frame;
use xcp_runtime::shared_page::PageView;
use xcp_runtime::xenstore::Store;
use xcp_xenbus::TxId;

const NONE: TxId = TxId::NONE;
/// The frontend's directory (relative to our home).
const FRONT: &str = "device/vif/0";
/// Connect, be thrown out, start again: this many times.
const ROUNDS: u32 = 3;
/// Bad but legal packets per round before the garbage: each must be
/// answered with `NETIF_RSP_ERROR`, the VIF staying connected.
const SURVIVABLE: u32 = 16;
/// How long the backend may take to answer them, ms.
const ANSWER_WAIT_MS: u64 = 5_000;
/// Bursts of garbage per round at most before giving up.
const MAX_BURSTS: u32 = 400;
/// How long a burst waits for the backend to react, ms.
const BURST_WAIT_MS: u64 = 100;
/// ... when the reaction waits for the gateway's reply.
const RX_BURST_WAIT_MS: u64 = 2_000;
/// How long a handshake step waits for the backend's state, ms.
const STATE_WAIT_MS: u64 = 30_000;
/// The seed without `=<seed>`.
const DEFAULT_SEED: u64 = 0x6e65_7466_7a7a;

// io/ring.h: the shared ring's header, then the slots.
const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;
const RING_HEADER: usize = 64;
/// Slots of the tx ring: (4096 - 64) / 12 rounded down to a power of two.
const TX_RING_SIZE: u32 = 256;
/// A tx slot: the union of netif_tx_request (12 B) and response (4 B).
const TX_SLOT: usize = 12;

// netif.h's tx flags and extra-info types.
const NETTXF_MORE_DATA: u16 = 1 << 2;
const NETTXF_EXTRA_INFO: u16 = 1 << 3;
/// netif.h's statuses of a packet sent, and of one the backend refused.
const NETIF_RSP_OKAY: i16 = 0;
const NETIF_RSP_ERROR: i16 = -1;
/// Slots of the rx ring: (4096 - 64) / 8 rounded down to a power of two.
const RX_RING_SIZE: u32 = 256;
/// An rx slot: netif_rx_request / netif_rx_response (8 B each).
const RX_SLOT: usize = 8;
/// An ARP request's length on the wire (without padding).
const ARP_LEN: usize = 42;
/// QEMU's user-network gateway, and the address we claim to ask from
/// (unused by QEMU's DHCP, which starts at .15).
const GATEWAY: [u8; 4] = [10, 0, 2, 2];
const ASKER: [u8; 4] = [10, 0, 2, 200];
/// XEN_NETIF_NR_SLOTS_MIN: the most slots a packet may take.
const NR_SLOTS_MIN: u32 = 18;

// io/xenbus.h.
const INITIALISING: u32 = 1;
const INIT_WAIT: u32 = 2;
const CONNECTED: u32 = 4;
const CLOSING: u32 = 5;
const CLOSED: u32 = 6;

/// An ARP request (RFC 826) from `mac` (at [`ASKER`]) for [`GATEWAY`].
fn arp_request(mac: [u8; 6]) -> [u8; ARP_LEN] {
    let mut f = [0u8; ARP_LEN];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    // Ethernet, IPv4, 6-byte and 4-byte addresses, request.
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ASKER);
    f[38..42].copy_from_slice(&GATEWAY);
    f
}

/// `aa:bb:cc:dd:ee:ff`.
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// splitmix64: small, deterministic, good enough for garbage.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n.max(1))) as u32
    }

    fn u16(&mut self) -> u16 {
        self.next() as u16
    }
}

/// One attack: what a burst writes into the tx ring.
#[derive(Clone, Copy, Debug)]
enum Attack {
    /// A well-formed ARP request from our MAC for QEMU's gateway (answered
    /// OKAY; the gateway's reply comes back to us).
    Arp,
    /// A packet shorter than an Ethernet header (dropped with an error).
    Runt,
    /// Random bytes in 1..=64 slots, `req_prod` past them.
    Garbage,
    /// A random `req_prod`, slots untouched.
    RandomIndex,
    /// `req_prod` more than a ring ahead.
    FarAhead,
    /// A fragment of size 0.
    ZeroFragment,
    /// `offset + size` past the granted page.
    PastPage,
    /// More than 18 slots in one packet.
    TooManySlots,
    /// A first slot with fewer bytes than an Ethernet header.
    SplitHeader,
    /// Fragments adding up to more than the first slot's total.
    Oversized,
    /// Extra info of type 0 or ≥ 5.
    BadExtra,
    /// Garbage in the rx ring (`req_prod` far ahead, random slots), then
    /// [`Attack::Arp`]: the gateway's reply finds it.
    RxGarbage,
    /// A well-formed packet whose grant is not ours to give (an error
    /// response, not a disconnect).
    BogusGrant,
}

const ATTACKS: [Attack; 11] = [
    Attack::Garbage,
    Attack::RandomIndex,
    Attack::FarAhead,
    Attack::ZeroFragment,
    Attack::PastPage,
    Attack::TooManySlots,
    Attack::SplitHeader,
    Attack::Oversized,
    Attack::BadExtra,
    Attack::RxGarbage,
    Attack::BogusGrant,
];

/// A tx request as netif.h lays it out.
#[derive(Clone, Copy)]
struct TxRequest {
    gref: u32,
    offset: u16,
    flags: u16,
    id: u16,
    size: u16,
}

impl TxRequest {
    fn bytes(self) -> [u8; TX_SLOT] {
        let mut b = [0u8; TX_SLOT];
        b[0..4].copy_from_slice(&self.gref.to_le_bytes());
        b[4..6].copy_from_slice(&self.offset.to_le_bytes());
        b[6..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..10].copy_from_slice(&self.id.to_le_bytes());
        b[10..12].copy_from_slice(&self.size.to_le_bytes());
        b
    }
}

/// One of our frames granted to the backend.
struct Granted {
    frame: Frame,
    gref: u32,
}

impl Granted {
    /// A zeroed frame granted to `domid`.
    fn new(domid: u16, readonly: bool) -> Result<Granted, String> {
        let frame = Frame::alloc().map_err(|e| format!("a frame: {e:?}"))?;
        let gref = gnttab::grant_access(domid, frame.pfn(), readonly)
            .map_err(|e| format!("grant a frame: {e:?}"))?;
        Ok(Granted { frame, gref })
    }

    /// Takes the grant back. A grant the backend still maps keeps its
    /// frame forever (never reused under it).
    fn end(self) {
        for _ in 0..100 {
            match gnttab::end_access(self.gref) {
                Ok(()) => return,
                Err(gnttab::GrantError::InUse) => sleep_ms(10),
                Err(_) => break,
            }
        }
        log::warn!(
            "netfront-fuzz: grant {} still mapped: its frame is kept",
            self.gref
        );
        core::mem::forget(self.frame);
    }
}

/// One life of the frontend: the two ring frames, a data frame holding
/// one well-formed frame (an ARP request), all granted, and a channel.
struct Rings {
    tx: Granted,
    rx: Granted,
    data: Granted,
    port: u32,
    /// Our `req_prod` on the tx ring.
    prod: u32,
}

impl Rings {
    fn view(&self) -> PageView<'_> {
        self.tx.frame.view()
    }

    fn put(&mut self, req: TxRequest) {
        let at = RING_HEADER + (self.prod % TX_RING_SIZE) as usize * TX_SLOT;
        self.view().write(at, &req.bytes());
        self.prod = self.prod.wrapping_add(1);
    }

    fn put_raw(&mut self, bytes: &[u8; TX_SLOT]) {
        let at = RING_HEADER + (self.prod % TX_RING_SIZE) as usize * TX_SLOT;
        self.view().write(at, bytes);
        self.prod = self.prod.wrapping_add(1);
    }

    fn publish(&self, req_prod: u32) {
        self.view().store_u32(REQ_PROD, req_prod);
        evtchn::send(self.port);
    }
}

struct Front {
    xs: Store,
    /// Our MAC (`device/vif/0/mac`).
    mac: [u8; 6],
    backend: String,
    backend_id: u16,
    rng: Rng,
}

fn sleep_ms(ms: u64) {
    let deadline = xcp_runtime::time::now_ns() + ms * 1_000_000;
    while xcp_runtime::time::now_ns() < deadline {
        xcp_runtime::event_loop::sleep_until(deadline);
    }
}

impl Front {
    fn read(&mut self, path: &str) -> Result<String, String> {
        self.xs
            .read_string(NONE, path)
            .map(|v| v.trim_end_matches('\0').trim().to_string())
            .map_err(|e| format!("read {path}: {e:?}"))
    }

    fn write(&mut self, key: &str, value: &str) -> Result<(), String> {
        let path = format!("{FRONT}/{key}");
        self.xs
            .write(NONE, &path, value.as_bytes())
            .map_err(|e| format!("write {path}: {e:?}"))
    }

    fn set_state(&mut self, state: u32) -> Result<(), String> {
        self.write("state", &state.to_string())
    }

    /// The backend's state (0 when unreadable: gone or garbled).
    fn backend_state(&mut self) -> u32 {
        let path = format!("{}/state", self.backend);
        self.read(&path)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Waits (bounded) until the backend's state is one of `want`;
    /// returns it, or the last state seen as the error.
    fn wait_backend(&mut self, want: &[u32], ms: u64) -> Result<u32, u32> {
        let deadline = xcp_runtime::time::now_ns() + ms * 1_000_000;
        loop {
            let s = self.backend_state();
            if want.contains(&s) {
                return Ok(s);
            }
            if xcp_runtime::time::now_ns() >= deadline {
                return Err(s);
            }
            sleep_ms(10);
        }
    }

    /// Grants fresh rings, advertises them and connects; returns them
    /// once the backend is Connected.
    fn connect(&mut self, round: u32) -> Result<Rings, String> {
        self.wait_backend(&[INIT_WAIT], STATE_WAIT_MS)
            .map_err(|s| format!("round {round}: backend state {s}, not InitWait"))?;
        let tx = Granted::new(self.backend_id, false)?;
        let rx = match Granted::new(self.backend_id, false) {
            Ok(g) => g,
            Err(e) => {
                tx.end();
                return Err(e);
            }
        };
        let mut data = match Granted::new(self.backend_id, true) {
            Ok(g) => g,
            Err(e) => {
                tx.end();
                rx.end();
                return Err(e);
            }
        };
        // FRONT_RING_INIT / SHARED_RING_INIT: indexes 0, events 1.
        for page in [tx.frame.view(), rx.frame.view()] {
            page.store_u32(REQ_PROD, 0);
            page.store_u32(REQ_EVENT, 1);
            page.store_u32(RSP_PROD, 0);
            page.store_u32(RSP_EVENT, 1);
        }
        data.frame.bytes_mut()[..ARP_LEN].copy_from_slice(&arp_request(self.mac));
        let port = match evtchn::alloc_unbound(self.backend_id) {
            Ok(p) => p,
            Err(e) => {
                tx.end();
                rx.end();
                data.end();
                return Err(format!("an event channel for the backend: {e}"));
            }
        };
        // Nothing to hear from the backend: its kicks must not wake our
        // sleeps.
        evtchn::mask(port);
        let (tx_gref, rx_gref) = (tx.gref, rx.gref);
        let rings = Rings {
            tx,
            rx,
            data,
            port,
            prod: 0,
        };
        let keys = [
            ("tx-ring-ref", tx_gref.to_string()),
            ("rx-ring-ref", rx_gref.to_string()),
            ("event-channel", port.to_string()),
            ("request-rx-copy", "1".into()),
            ("feature-rx-notify", "1".into()),
            ("feature-sg", "1".into()),
        ];
        for (key, value) in keys {
            if let Err(e) = self.write(key, &value) {
                self.release(rings);
                return Err(e);
            }
        }
        if let Err(e) = self.set_state(CONNECTED) {
            self.release(rings);
            return Err(e);
        }
        match self.wait_backend(&[CONNECTED, CLOSING, CLOSED], STATE_WAIT_MS) {
            Ok(CONNECTED) => {
                log::info!(
                    "netfront-fuzz: round {round}: connected (backend state 4): \
                     tx-ring-ref {tx_gref} rx-ring-ref {rx_gref} event-channel {port}"
                );
                Ok(rings)
            }
            other => {
                self.release(rings);
                Err(format!(
                    "round {round}: the backend did not connect (state {})",
                    other.unwrap_or_else(|s| s)
                ))
            }
        }
    }

    /// Takes our grants back and closes the channel.
    fn release(&mut self, rings: Rings) {
        let _ = evtchn::close(rings.port);
        rings.tx.end();
        rings.rx.end();
        rings.data.end();
    }

    /// Writes one attack into the tx ring and kicks the backend.
    fn burst(&mut self, rings: &mut Rings, attack: Attack) {
        let rng = &mut self.rng;
        let gref = rng.below(4096);
        let id = rng.u16();
        match attack {
            Attack::Garbage => {
                for _ in 0..=rng.below(64) {
                    let mut b = [0u8; TX_SLOT];
                    for chunk in b.chunks_mut(8) {
                        let r = rng.next().to_le_bytes();
                        chunk.copy_from_slice(&r[..chunk.len()]);
                    }
                    rings.put_raw(&b);
                }
                // Random bytes in the events too: the backend must not
                // trust them either.
                rings.view().store_u32(RSP_EVENT, rng.next() as u32);
                rings.publish(rings.prod);
            }
            Attack::RandomIndex => {
                let prod = rng.next() as u32;
                rings.prod = prod;
                rings.publish(prod);
            }
            Attack::FarAhead => {
                let prod = rings
                    .prod
                    .wrapping_add(TX_RING_SIZE + 1 + rng.below(1 << 20));
                rings.prod = prod;
                rings.publish(prod);
            }
            Attack::ZeroFragment => {
                rings.put(TxRequest {
                    gref,
                    offset: 0,
                    flags: NETTXF_MORE_DATA,
                    id,
                    size: 200,
                });
                rings.put(TxRequest {
                    gref,
                    offset: 0,
                    flags: 0,
                    id: id.wrapping_add(1),
                    size: 0,
                });
                rings.publish(rings.prod);
            }
            Attack::PastPage => {
                let offset = 4096 - rng.below(100) as u16;
                rings.put(TxRequest {
                    gref,
                    offset,
                    flags: 0,
                    id,
                    size: 200 + rng.below(1000) as u16,
                });
                rings.publish(rings.prod);
            }
            Attack::TooManySlots => {
                let slots = NR_SLOTS_MIN + 1 + rng.below(40);
                for i in 0..slots {
                    let last = i + 1 == slots;
                    rings.put(TxRequest {
                        gref,
                        offset: 0,
                        flags: if last { 0 } else { NETTXF_MORE_DATA },
                        id: id.wrapping_add(i as u16),
                        size: if i == 0 { (slots * 100) as u16 } else { 100 },
                    });
                }
                rings.publish(rings.prod);
            }
            Attack::SplitHeader => {
                // 100 bytes in all, 95 of them in the second slot: 5 in
                // the first, less than an Ethernet header (XSA-423).
                rings.put(TxRequest {
                    gref,
                    offset: 0,
                    flags: NETTXF_MORE_DATA,
                    id,
                    size: 100,
                });
                rings.put(TxRequest {
                    gref,
                    offset: 0,
                    flags: 0,
                    id: id.wrapping_add(1),
                    size: 95,
                });
                rings.publish(rings.prod);
            }
            Attack::Oversized => {
                rings.put(TxRequest {
                    gref,
                    offset: 0,
                    flags: NETTXF_MORE_DATA,
                    id,
                    size: 50,
                });
                rings.put(TxRequest {
                    gref,
                    offset: 0,
                    flags: 0,
                    id: id.wrapping_add(1),
                    size: 100 + rng.below(3000) as u16,
                });
                rings.publish(rings.prod);
            }
            Attack::BadExtra => {
                rings.put(TxRequest {
                    gref,
                    offset: 0,
                    flags: NETTXF_EXTRA_INFO,
                    id,
                    size: 60,
                });
                // netif_extra_info: type, flags, then the union.
                let kind = match rng.below(2) {
                    0 => 0,
                    _ => 5 + rng.below(251) as u8,
                };
                let mut b = [0u8; TX_SLOT];
                b[0] = kind;
                b[1] = rng.next() as u8 & !1;
                rings.put_raw(&b);
                rings.publish(rings.prod);
            }
            Attack::Arp => {
                rings.put(TxRequest {
                    gref: rings.data.gref,
                    offset: 0,
                    flags: 0,
                    id,
                    size: ARP_LEN as u16,
                });
                rings.publish(rings.prod);
            }
            Attack::RxGarbage => {
                let rx = rings.rx.frame.view();
                for slot in 0..RX_RING_SIZE as usize {
                    rx.write(RING_HEADER + slot * RX_SLOT, &rng.next().to_le_bytes());
                }
                let cons = rx.load_u32(RSP_PROD);
                rx.store_u32(
                    REQ_PROD,
                    cons.wrapping_add(RX_RING_SIZE + 1 + rng.below(1 << 20)),
                );
                rings.put(TxRequest {
                    gref: rings.data.gref,
                    offset: 0,
                    flags: 0,
                    id,
                    size: ARP_LEN as u16,
                });
                rings.publish(rings.prod);
            }
            Attack::Runt => {
                rings.put(TxRequest {
                    gref,
                    offset: 0,
                    flags: 0,
                    id,
                    size: 1 + rng.below(13) as u16,
                });
                rings.publish(rings.prod);
            }
            Attack::BogusGrant => {
                rings.put(TxRequest {
                    gref: 0x8000_0000 | rng.next() as u32,
                    offset: 0,
                    flags: 0,
                    id,
                    size: 60 + rng.below(1400) as u16,
                });
                rings.publish(rings.prod);
            }
        }
    }

    /// Sends an ARP request, then [`SURVIVABLE`] runts and packets with
    /// bogus grants, one at a time: each must be answered in its slot, with
    /// its id, OKAY for the ARP request and an error for the others, while
    /// the backend stays connected.
    fn survive(&mut self, rings: &mut Rings, round: u32) -> Result<(), String> {
        for n in 0..=SURVIVABLE {
            let (attack, want) = match (n, self.rng.below(2)) {
                (0, _) => (Attack::Arp, NETIF_RSP_OKAY),
                (_, 0) => (Attack::Runt, NETIF_RSP_ERROR),
                _ => (Attack::BogusGrant, NETIF_RSP_ERROR),
            };
            let slot = rings.prod;
            let at = RING_HEADER + (slot % TX_RING_SIZE) as usize * TX_SLOT;
            let mut req = [0u8; TX_SLOT];
            self.burst(rings, attack);
            rings.view().read(at, &mut req);
            let id = u16::from_le_bytes([req[8], req[9]]);
            let deadline = xcp_runtime::time::now_ns() + ANSWER_WAIT_MS * 1_000_000;
            while rings.view().load_u32(RSP_PROD) != rings.prod {
                let state = self.backend_state();
                if state != CONNECTED {
                    return Err(format!(
                        "round {round}: packet {n} ({attack:?}) took the backend to state {state}"
                    ));
                }
                if xcp_runtime::time::now_ns() >= deadline {
                    return Err(format!(
                        "round {round}: packet {n} ({attack:?}) not answered in {ANSWER_WAIT_MS} ms"
                    ));
                }
                sleep_ms(10);
            }
            let mut rsp = [0u8; 4];
            rings.view().read(at, &mut rsp);
            let (got_id, status) = (
                u16::from_le_bytes([rsp[0], rsp[1]]),
                i16::from_le_bytes([rsp[2], rsp[3]]),
            );
            if (got_id, status) != (id, want) {
                return Err(format!(
                    "round {round}: packet {n} ({attack:?}, id {id}) answered id {got_id} status {status}"
                ));
            }
        }
        log::info!(
            "netfront-fuzz: round {round}: an ARP request sent, {SURVIVABLE} runts and bogus grants answered with errors, still connected"
        );
        Ok(())
    }

    /// Fuzzes until the backend throws us out; returns the burst and the
    /// attack that did it, and the backend's state.
    fn fuzz(&mut self, rings: &mut Rings, round: u32) -> Result<(u32, Attack, u32), String> {
        for n in 1..=MAX_BURSTS {
            // Round 2 starts with the rx ring, so every run exercises it.
            let attack = match (round, n) {
                (2, 1) => Attack::RxGarbage,
                _ => ATTACKS[self.rng.below(ATTACKS.len() as u32) as usize],
            };
            self.burst(rings, attack);
            let wait = match attack {
                Attack::RxGarbage => RX_BURST_WAIT_MS,
                _ => BURST_WAIT_MS,
            };
            match self.wait_backend(&[CLOSING, CLOSED], wait) {
                Ok(state) => return Ok((n, attack, state)),
                Err(CONNECTED) => {}
                Err(s) => return Err(format!("round {round}: backend state {s} while fuzzing")),
            }
        }
        Err(format!(
            "round {round}: still connected after {MAX_BURSTS} bursts"
        ))
    }

    /// Connects, fuzzes until thrown out and closes, [`ROUNDS`] times;
    /// returns the disconnects.
    fn rounds(&mut self) -> Result<u32, String> {
        let mut disconnects = 0;
        for round in 1..=ROUNDS {
            if round > 1 {
                // Start again, as a netfront whose driver is reloaded.
                self.set_state(INITIALISING)?;
            }
            let mut rings = self.connect(round)?;
            let result = self
                .survive(&mut rings, round)
                .and_then(|()| self.fuzz(&mut rings, round));
            let (burst, attack, state) = match result {
                Ok(r) => r,
                Err(e) => {
                    self.release(rings);
                    return Err(e);
                }
            };
            disconnects += 1;
            log::info!(
                "netfront-fuzz: backend disconnected us (state {state}) in round {round} \
                 after burst {burst} ({attack:?})"
            );
            // Close as Linux's netfront does when its backend closes, and
            // wait for the backend to be Closed before starting again (a
            // state written in between could be missed).
            self.set_state(CLOSED)?;
            let closed = self.wait_backend(&[CLOSED], STATE_WAIT_MS);
            self.release(rings);
            closed.map_err(|s| format!("round {round}: backend state {s} after we closed"))?;
            log::info!("netfront-fuzz: round {round}: closed (backend state 6)");
        }
        Ok(disconnects)
    }
}

/// Runs the hostile frontend, then idles (the test shuts the VM down).
pub fn run(boot: &xcp_runtime::Boot, arg: &str) -> ! {
    let seed = match arg {
        "" => Some(DEFAULT_SEED),
        s => s.parse().ok(),
    };
    match seed {
        Some(seed) => {
            log::info!("netfront-fuzz: seed {seed}");
            match start(boot, seed) {
                Ok(n) => log::info!("netfront-fuzz: done, {n} disconnects"),
                Err(e) => log::warn!("netfront-fuzz: gave up: {e}"),
            }
        }
        None => log::warn!("netfront-fuzz: gave up: the seed {arg:?} is not a number"),
    }
    loop {
        xcp_runtime::event_loop::idle();
    }
}

fn start(boot: &xcp_runtime::Boot, seed: u64) -> Result<u32, String> {
    gnttab::init().map_err(|e| format!("grant table: {e:?}"))?;
    let xs = xcp_runtime::xenstore::connect(boot).ok_or("no xenstore ring in start_info")?;
    let mut front = Front {
        xs,
        backend: String::new(),
        backend_id: 0,
        mac: [0; 6],
        rng: Rng(seed),
    };
    let mac = front.read(&format!("{FRONT}/mac"))?;
    front.mac = parse_mac(&mac).ok_or_else(|| format!("mac {mac:?} is not a MAC"))?;
    front.backend = front.read(&format!("{FRONT}/backend"))?;
    let id = front.read(&format!("{FRONT}/backend-id"))?;
    front.backend_id = id
        .parse()
        .map_err(|_| format!("backend-id {id:?} is not a domid"))?;
    log::info!(
        "netfront-fuzz: backend {} (domain {})",
        front.backend,
        front.backend_id
    );
    front.rounds()
}
