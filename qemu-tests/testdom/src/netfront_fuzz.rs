//! `netfront-fuzz[=<seed>]`: a netfront gone bad, as a XenAPI VM's guest
//! with a VIF. It connects to its backend (netdom) the way a netfront
//! does, then writes garbage into its rings until the backend
//! disconnects it, closes, starts again with fresh rings, and does it
//! again, for [`ROUNDS`] rounds.
//!
//! Read first: xen/include/public/io/netif.h, io/ring.h, io/xenbus.h;
//! netdom/netback/DESIGN.md ("Transmit checks": what must disconnect).
//! This file is the frontend's life (xenstore handshake, rounds, waits);
//! `garbage.rs` writes the rings.
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

mod garbage;

use alloc::format;
use alloc::string::{String, ToString};

use xcp_runtime::evtchn;
use xcp_runtime::gnttab;

use crate::pvfront::{sleep_ms, Bus, CLOSED, CLOSING, CONNECTED, INITIALISING, INIT_WAIT};

use garbage::{
    arp_request, parse_mac, Attack, Granted, Rings, Rng, ARP_LEN, ATTACKS, NETIF_RSP_ERROR,
    NETIF_RSP_OKAY, REQ_EVENT, REQ_PROD, RING_HEADER, RSP_EVENT, RSP_PROD, TX_RING_SIZE, TX_SLOT,
};

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

struct Front {
    /// Our side of the handshake (`FRONT`, the backend's directory).
    bus: Bus,
    /// Our MAC (`device/vif/0/mac`).
    mac: [u8; 6],
    rng: Rng,
}

impl Front {
    /// Grants fresh rings, advertises them and connects; returns them
    /// once the backend is Connected.
    fn connect(&mut self, round: u32) -> Result<Rings, String> {
        self.bus
            .wait_backend(&[INIT_WAIT], STATE_WAIT_MS)
            .map_err(|s| format!("round {round}: backend state {s}, not InitWait"))?;
        let tx = Granted::new(self.bus.backend_id, false)?;
        let rx = match Granted::new(self.bus.backend_id, false) {
            Ok(g) => g,
            Err(e) => {
                tx.end();
                return Err(e);
            }
        };
        let mut data = match Granted::new(self.bus.backend_id, true) {
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
        let port = match evtchn::alloc_unbound(self.bus.backend_id) {
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
            if let Err(e) = self.bus.write(key, &value) {
                self.release(rings);
                return Err(e);
            }
        }
        if let Err(e) = self.bus.set_state(CONNECTED) {
            self.release(rings);
            return Err(e);
        }
        match self
            .bus
            .wait_backend(&[CONNECTED, CLOSING, CLOSED], STATE_WAIT_MS)
        {
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
            rings.attack(&mut self.rng, attack);
            rings.view().read(at, &mut req);
            let id = u16::from_le_bytes([req[8], req[9]]);
            let deadline = xcp_runtime::time::now_ns() + ANSWER_WAIT_MS * 1_000_000;
            while rings.view().load_u32(RSP_PROD) != rings.prod {
                let state = self.bus.backend_state();
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
            rings.attack(&mut self.rng, attack);
            let wait = match attack {
                Attack::RxGarbage => RX_BURST_WAIT_MS,
                _ => BURST_WAIT_MS,
            };
            match self.bus.wait_backend(&[CLOSING, CLOSED], wait) {
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
                self.bus.set_state(INITIALISING)?;
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
            self.bus.set_state(CLOSED)?;
            let closed = self.bus.wait_backend(&[CLOSED], STATE_WAIT_MS);
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
        bus: Bus::new(xs, FRONT),
        mac: [0; 6],
        rng: Rng(seed),
    };
    let mac = front.bus.read(&format!("{FRONT}/mac"))?;
    front.mac = parse_mac(&mac).ok_or_else(|| format!("mac {mac:?} is not a MAC"))?;
    front.bus.backend = front.bus.read(&format!("{FRONT}/backend"))?;
    let id = front.bus.read(&format!("{FRONT}/backend-id"))?;
    front.bus.backend_id = id
        .parse()
        .map_err(|_| format!("backend-id {id:?} is not a domid"))?;
    log::info!(
        "netfront-fuzz: backend {} (domain {})",
        front.bus.backend,
        front.bus.backend_id
    );
    front.rounds()
}
