//! The channel-test peer: dom0 grants two pages (its tx, our rx; our tx, its
//! rx) and an event channel; testdom answers every `Ping` with a `Pong`
//! saying what it received, over `xcp-channel`.

use alloc::collections::VecDeque;

use xcp_channel::{Channel, Role, SendError};
use xcp_runtime::event_loop::{App, Loop};
use xcp_runtime::gnttab::{self, GrantMapping};
use xcp_selftest::{checksum, three, Ping, Pong};

struct Peer {
    channel: Channel<GrantMapping>,
    port: u32,
    /// Pongs waiting for room in the ring (bounded by what dom0 may have in
    /// flight: it sends only as fast as we drain).
    backlog: VecDeque<Pong>,
    answered: u32,
}

impl Peer {
    fn pump(&mut self) {
        loop {
            let mut kick = false;
            match self.channel.flush() {
                Ok(n) => kick |= n.kick(),
                Err(SendError::WouldBlock(n)) => {
                    kick |= n.kick();
                }
                Err(e) => panic!("channel: {e:?}"),
            }
            while self.backlog.len() < 64 {
                match self.channel.recv::<Ping>() {
                    Ok(Some(ping)) => self.backlog.push_back(Pong {
                        seq: ping.seq,
                        len: ping.payload.len() as u32,
                        sum: checksum(&ping.payload),
                    }),
                    Ok(None) => break,
                    Err(e) => panic!("channel: {e:?}"),
                }
            }
            let mut progressed = false;
            while let Some(pong) = self.backlog.front() {
                match self.channel.send(pong) {
                    Ok(n) => {
                        kick |= n.kick();
                        self.backlog.pop_front();
                        self.answered += 1;
                        progressed = true;
                    }
                    Err(SendError::WouldBlock(n)) => {
                        kick |= n.kick();
                        break;
                    }
                    Err(e) => panic!("channel: {e:?}"),
                }
            }
            kick |= self.channel.take_notify().kick();
            if kick {
                xcp_runtime::evtchn::send(self.port);
            }
            if !progressed {
                return;
            }
        }
    }
}

impl App for Peer {
    fn on_event(&mut self, _lp: &mut Loop, _port: u32) {
        self.pump();
    }

    fn on_timer(&mut self, _lp: &mut Loop, _token: u64) {}
}

/// Runs the peer forever (dom0 destroys us when the test ends).
pub fn run(arg: &str) -> ! {
    let (dom0_tx, dom0_rx, dom0_port) = three(arg).expect("channel=<gref>,<gref>,<port>");
    let rx: GrantMapping = gnttab::map_grant(0, dom0_tx, false).expect("map dom0's tx page");
    let tx: GrantMapping = gnttab::map_grant(0, dom0_rx, false).expect("map dom0's rx page");
    let channel = Channel::new(tx, rx, Role::Acceptor).expect("channel setup");
    let port = xcp_runtime::evtchn::bind_interdomain(0, dom0_port).expect("bind dom0's port");
    log::info!("channel peer: connected on port {port}");
    let mut peer = Peer {
        channel,
        port,
        backlog: VecDeque::new(),
        answered: 0,
    };
    let mut lp = Loop::new();
    lp.watch(port).expect("watch");
    peer.pump();
    lp.run(&mut peer);
    panic!("channel peer loop ended after {} answers", peer.answered);
}
