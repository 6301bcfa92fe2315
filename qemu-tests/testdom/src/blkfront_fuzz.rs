//! `blkfront-fuzz[=<seed>]`: a blkfront gone bad, as a XenAPI VM's guest
//! with one VBD (`device/vbd/51712`, its backend in stordom). It connects
//! the way a blkfront does, does some honest I/O, then writes garbage into
//! its ring until the backend disconnects it, closes, starts again with a
//! fresh ring, and does it again, for [`ROUNDS`] rounds.
//!
//! Read first: xen/include/public/io/blkif.h, io/ring.h, io/xenbus.h;
//! stordom/blkback/src/request.rs (what gets an error response, what
//! disconnects). This file is the frontend's life (xenstore handshake,
//! rounds, waits); `ring.rs` writes the ring.
//!
//! Each round first reads sector 0 into a granted page and writes a
//! seeded pattern to a few sectors and reads it back (each answered
//! `BLKIF_RSP_OKAY`, the data checked), then sends requests that are
//! wrong but legal, one at a time (200 segments, first_sect > last_sect,
//! a segment past its page, sectors past the end, an indirect request
//! with a bogus grant, a bogus data grant, an unknown operation): each
//! must come back with its id and an error status while the VBD stays
//! connected. Then the garbage, from a deterministic PRNG (splitmix64)
//! seeded from the command line, so a failing seed replays: `req_prod`
//! far ahead, a random `req_prod`, an id reused while in flight, random
//! bytes in the slots. Each round's garbage starts with
//! [`GARBAGE_FIRST`] bursts of random slots, then attack `r - 1` of
//! [`ATTACKS`] in round `r` (so every run tries each kind), then any.
//!
//! Log lines (the console is relayed into dom0's log as `[<vm name>]
//! ...`): `blkfront-fuzz: round <r>: connected ...`, `blkfront-fuzz: round
//! <r>: ... answered OKAY, data checked`, `blkfront-fuzz: round <r>: <n>
//! bad requests answered with errors, still connected`, `blkfront-fuzz:
//! round <r>: backend disconnected us (state 5) after burst <b> (<attack>)`,
//! `blkfront-fuzz: done, <n> disconnects`. It never panics on the
//! backend's doing and every wait is bounded: a failure is logged as
//! `blkfront-fuzz: gave up: ...` and the domain idles.

mod ring;

use alloc::format;
use alloc::string::{String, ToString};

use xcp_runtime::evtchn;
use xcp_runtime::gnttab;

use crate::pvfront::{
    sleep_ms, Bus, CLOSED, CLOSING, CONNECTED, INITIALISED, INITIALISING, INIT_WAIT,
};

use ring::{
    direct, Attack, Granted, Ring, Rng, ATTACKS, BADS, LAST_SECT, OP_READ, OP_WRITE, REQ_EVENT,
    REQ_PROD, RING_SIZE, RSP_EVENT, RSP_OKAY, RSP_PROD, SLOT,
};

/// The frontend's directory (relative to our home): xvda.
const FRONT: &str = "device/vbd/51712";
/// Connect, be thrown out, start again: this many times.
const ROUNDS: u32 = 3;
/// Wrong but legal requests per round before the garbage.
const SURVIVABLE: u32 = 12;
/// How long the backend may take to answer a request, ms.
const ANSWER_WAIT_MS: u64 = 10_000;
/// Bursts of garbage per round at most before giving up.
const MAX_BURSTS: u32 = 200;
/// Bursts of random slots each round starts with.
const GARBAGE_FIRST: u32 = 20;
/// How long a burst waits for the backend to react, ms.
const BURST_WAIT_MS: u64 = 200;
/// How long a handshake step waits for the backend's state, ms.
const STATE_WAIT_MS: u64 = 30_000;
/// The sectors the honest write uses (a page's worth, past sector 0).
const WRITE_SECTOR: u64 = 8;
/// The seed without `=<seed>`.
const DEFAULT_SEED: u64 = 0x626c_6b66_7a7a;

struct Front {
    /// Our side of the handshake (`FRONT`, the backend's directory).
    bus: Bus,
    rng: Rng,
    /// The disk's size in 512-byte sectors (the backend's `sectors`).
    sectors: u64,
}

impl Front {
    /// Grants a fresh ring, advertises it and connects; returns it once
    /// the backend is Connected and has said how big the disk is.
    fn connect(&mut self, round: u32) -> Result<Ring, String> {
        self.bus
            .wait_backend(&[INIT_WAIT], STATE_WAIT_MS)
            .map_err(|s| format!("round {round}: backend state {s}, not InitWait"))?;
        let page = Granted::new(self.bus.backend_id, false)?;
        let a = match Granted::new(self.bus.backend_id, false) {
            Ok(g) => g,
            Err(e) => {
                page.end();
                return Err(e);
            }
        };
        let b = match Granted::new(self.bus.backend_id, false) {
            Ok(g) => g,
            Err(e) => {
                page.end();
                a.end();
                return Err(e);
            }
        };
        // SHARED_RING_INIT / FRONT_RING_INIT: indexes 0, events 1.
        let view = page.frame.view();
        view.store_u32(REQ_PROD, 0);
        view.store_u32(REQ_EVENT, 1);
        view.store_u32(RSP_PROD, 0);
        view.store_u32(RSP_EVENT, 1);
        let port = match evtchn::alloc_unbound(self.bus.backend_id) {
            Ok(p) => p,
            Err(e) => {
                page.end();
                a.end();
                b.end();
                return Err(format!("an event channel for the backend: {e}"));
            }
        };
        // We poll rsp_prod: the backend's kicks must not wake our sleeps.
        evtchn::mask(port);
        let gref = page.gref;
        let ring = Ring {
            ring: page,
            data: [a, b],
            port,
            prod: 0,
            cons: 0,
            next_id: u64::from(round) << 32,
        };
        let keys = [
            ("ring-ref", gref.to_string()),
            ("event-channel", port.to_string()),
            ("protocol", "x86_64-abi".into()),
        ];
        for (key, value) in keys {
            if let Err(e) = self.bus.write(key, &value) {
                self.release(ring);
                return Err(e);
            }
        }
        if let Err(e) = self.bus.set_state(INITIALISED) {
            self.release(ring);
            return Err(e);
        }
        match self
            .bus
            .wait_backend(&[CONNECTED, CLOSING, CLOSED], STATE_WAIT_MS)
        {
            Ok(CONNECTED) => {}
            other => {
                self.release(ring);
                return Err(format!(
                    "round {round}: the backend did not connect (state {})",
                    other.unwrap_or_else(|s| s)
                ));
            }
        }
        let sectors = self
            .bus
            .read(&format!("{}/sectors", self.bus.backend))
            .and_then(|s| s.parse::<u64>().map_err(|_| format!("sectors {s:?}")));
        let sectors = match sectors {
            Ok(n) if n > WRITE_SECTOR + 8 => n,
            Ok(n) => {
                self.release(ring);
                return Err(format!("round {round}: a disk of {n} sectors is too small"));
            }
            Err(e) => {
                self.release(ring);
                return Err(e);
            }
        };
        self.sectors = sectors;
        if let Err(e) = self.bus.set_state(CONNECTED) {
            self.release(ring);
            return Err(e);
        }
        log::info!(
            "blkfront-fuzz: round {round}: connected (backend state 4): {sectors} sectors, \
             ring-ref {gref} event-channel {port}"
        );
        Ok(ring)
    }

    /// Takes our grants back and closes the channel.
    fn release(&mut self, ring: Ring) {
        let _ = evtchn::close(ring.port);
        let Ring { ring, data, .. } = ring;
        ring.end();
        for g in data {
            g.end();
        }
    }

    /// Sends one request and waits (bounded) for its answer; returns its
    /// status. The VBD must stay connected meanwhile.
    fn ask(
        &mut self,
        ring: &mut Ring,
        req: &[u8; SLOT],
        round: u32,
        what: &str,
    ) -> Result<i16, String> {
        let mut id = [0u8; 8];
        id.copy_from_slice(&req[8..16]);
        let id = u64::from_le_bytes(id);
        let index = ring.prod;
        ring.put(req);
        ring.publish(ring.prod);
        let deadline = xcp_runtime::time::now_ns() + ANSWER_WAIT_MS * 1_000_000;
        while ring.rsp_prod() == ring.cons {
            let state = self.bus.backend_state();
            if state != CONNECTED {
                return Err(format!(
                    "round {round}: {what} took the backend to state {state}"
                ));
            }
            if xcp_runtime::time::now_ns() >= deadline {
                return Err(format!(
                    "round {round}: {what} not answered in {ANSWER_WAIT_MS} ms"
                ));
            }
            sleep_ms(5);
        }
        let rsp = ring.rsp_prod();
        if rsp != ring.cons.wrapping_add(1) {
            return Err(format!(
                "round {round}: {what}: rsp_prod {rsp}, one answer expected after {}",
                ring.cons
            ));
        }
        ring.cons = rsp;
        let (got, status) = ring.response(index);
        if got != id {
            return Err(format!(
                "round {round}: {what} (id {id}) answered with id {got}"
            ));
        }
        Ok(status)
    }

    /// Reads sector 0, writes a seeded pattern and reads it back: each
    /// answered OKAY, the data as written.
    fn honest(&mut self, ring: &mut Ring, round: u32) -> Result<(), String> {
        let (a, b) = (ring.data[0].gref, ring.data[1].gref);
        let id = ring.id();
        let status = self.ask(
            ring,
            &direct(OP_READ, 1, id, 0, &[(a, 0, LAST_SECT)]),
            round,
            "a read of sector 0",
        )?;
        if status != RSP_OKAY {
            return Err(format!(
                "round {round}: a read of sector 0 answered status {status}"
            ));
        }
        let mut pattern = [0u8; 4096];
        for chunk in pattern.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.next().to_le_bytes());
        }
        ring.data[0].frame.view().write(0, &pattern);
        ring.data[1].frame.view().write(0, &[0u8; 4096]);
        let id = ring.id();
        let write = direct(OP_WRITE, 1, id, WRITE_SECTOR, &[(a, 0, LAST_SECT)]);
        let status = self.ask(ring, &write, round, "a write")?;
        if status != RSP_OKAY {
            return Err(format!("round {round}: a write answered status {status}"));
        }
        let id = ring.id();
        let read = direct(OP_READ, 1, id, WRITE_SECTOR, &[(b, 0, LAST_SECT)]);
        let status = self.ask(ring, &read, round, "a read back")?;
        if status != RSP_OKAY {
            return Err(format!(
                "round {round}: a read back answered status {status}"
            ));
        }
        let mut back = [0u8; 4096];
        ring.data[1].frame.view().read(0, &mut back);
        if back != pattern {
            let at = back
                .iter()
                .zip(pattern.iter())
                .position(|(x, y)| x != y)
                .unwrap_or(0);
            return Err(format!(
                "round {round}: the data read back differs from byte {at}"
            ));
        }
        log::info!(
            "blkfront-fuzz: round {round}: a read of sector 0, a write of sectors {WRITE_SECTOR}..{} \
             and its read back answered OKAY, data checked",
            WRITE_SECTOR + 7
        );
        Ok(())
    }

    /// Sends [`SURVIVABLE`] wrong but legal requests, one at a time: each
    /// must be answered with its id and an error while the backend stays
    /// connected.
    fn survive(&mut self, ring: &mut Ring, round: u32) -> Result<(), String> {
        for n in 0..SURVIVABLE {
            // Every kind once per round, then random ones.
            let bad = match BADS.get(n as usize) {
                Some(&b) => b,
                None => BADS[self.rng.below(BADS.len() as u32) as usize],
            };
            let req = ring.bad(&mut self.rng, bad, self.sectors);
            let what = format!("bad request {n} ({bad:?})");
            let status = self.ask(ring, &req, round, &what)?;
            if status >= 0 {
                return Err(format!(
                    "round {round}: {what} answered status {status}, not an error"
                ));
            }
        }
        log::info!(
            "blkfront-fuzz: round {round}: {SURVIVABLE} bad requests answered with errors, still connected"
        );
        Ok(())
    }

    /// Fuzzes until the backend throws us out; returns the burst and the
    /// attack that did it, and the backend's state.
    fn fuzz(&mut self, ring: &mut Ring, round: u32) -> Result<(u32, Attack, u32), String> {
        for n in 1..=MAX_BURSTS {
            // Random slots first (mostly error responses), then the
            // round's own attack, then any.
            let attack = match (n, ATTACKS.get(round as usize - 1)) {
                (n, _) if n <= GARBAGE_FIRST => Attack::Garbage,
                (n, Some(&a)) if n == GARBAGE_FIRST + 1 => a,
                _ => ATTACKS[self.rng.below(ATTACKS.len() as u32) as usize],
            };
            ring.attack(&mut self.rng, attack);
            match self.bus.wait_backend(&[CLOSING, CLOSED], BURST_WAIT_MS) {
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
                // Start again, as a blkfront whose driver is reloaded.
                self.bus.set_state(INITIALISING)?;
            }
            let mut ring = self.connect(round)?;
            let result = self
                .honest(&mut ring, round)
                .and_then(|()| self.survive(&mut ring, round))
                .and_then(|()| self.fuzz(&mut ring, round));
            let (burst, attack, state) = match result {
                Ok(r) => r,
                Err(e) => {
                    self.release(ring);
                    return Err(e);
                }
            };
            disconnects += 1;
            let error = self
                .bus
                .read(&format!("{}/error", self.bus.backend))
                .unwrap_or_else(|_| "-".into());
            log::info!(
                "blkfront-fuzz: round {round}: backend disconnected us (state {state}) \
                 after burst {burst} ({attack:?}); its error key: {error}"
            );
            // Close as Linux's blkfront does when its backend closes, and
            // wait for the backend to be Closed before starting again (a
            // state written in between could be missed).
            self.bus.set_state(CLOSED)?;
            let closed = self.bus.wait_backend(&[CLOSED], STATE_WAIT_MS);
            self.release(ring);
            closed.map_err(|s| format!("round {round}: backend state {s} after we closed"))?;
            log::info!("blkfront-fuzz: round {round}: closed (backend state 6)");
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
            log::info!("blkfront-fuzz: seed {seed}");
            match start(boot, seed) {
                Ok(n) => log::info!("blkfront-fuzz: done, {n} disconnects"),
                Err(e) => log::warn!("blkfront-fuzz: gave up: {e}"),
            }
        }
        None => log::warn!("blkfront-fuzz: gave up: the seed {arg:?} is not a number"),
    }
    loop {
        xcp_runtime::event_loop::idle();
    }
}

fn start(boot: &xcp_runtime::Boot, seed: u64) -> Result<u32, String> {
    gnttab::init().map_err(|e| format!("grant table: {e:?}"))?;
    let xs = xcp_runtime::xenstore::connect(boot).ok_or("no xenstore ring in start_info")?;
    let mut front = Front {
        bus: Bus::new(xs, FRONT),
        rng: Rng(seed),
        sectors: 0,
    };
    front.bus.backend = front.bus.read(&format!("{FRONT}/backend"))?;
    let id = front.bus.read(&format!("{FRONT}/backend-id"))?;
    front.bus.backend_id = id
        .parse()
        .map_err(|_| format!("backend-id {id:?} is not a domid"))?;
    log::info!(
        "blkfront-fuzz: backend {} (domain {}), {RING_SIZE}-slot ring",
        front.bus.backend,
        front.bus.backend_id
    );
    front.rounds()
}
