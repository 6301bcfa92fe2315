//! `channel`: 10,000 messages each way over the inter-domain channel, and the
//! helper that gives testdom a channel dom0 granted.

use super::*;

pub(super) struct ChannelState {
    channel: Channel<Frame>,
    port: u32,
    sent: u32,
    answered: u32,
    started: u64,
}

/// Builds testdom with `<key>=<tx gref>,<rx gref>,<port>` on its command
/// line: a channel whose pages dom0 grants. Returns the domid, the channel
/// and dom0's port (watched).
pub fn channel_to_testdom(
    platform: &mut Platform,
    lp: &mut Loop,
    key: &str,
    extra: &str,
) -> (u16, Channel<Frame>, u32) {
    let index = testdom(platform);
    let tx = Frame::alloc().expect("a tx page");
    let rx = Frame::alloc().expect("an rx page");
    let (tx_pfn, rx_pfn) = (tx.pfn(), rx.pfn());
    // The rings are set up before testdom runs: it may send as soon as it
    // boots, and setting them up after would wipe what it sent.
    let channel = Channel::new(tx, rx, Role::Initiator).expect("channel setup");
    let mut made: Option<(u16, u32)> = None;
    let result = platform.start_with(index, &mut |_, _, domid| {
        let grant = |pfn| xcp_runtime::gnttab::grant_access(domid, pfn, false).expect("grant");
        let (tx_ref, rx_ref) = (grant(tx_pfn), grant(rx_pfn));
        let port = xcp_runtime::evtchn::alloc_unbound(domid).expect("an unbound port");
        made = Some((domid, port));
        Ok(alloc::format!("{key}={tx_ref},{rx_ref},{port} {extra}"))
    });
    if result.is_err() {
        fail(key, "could not build testdom");
    }
    let (domid, port) = made.expect("the command line was made");
    lp.watch(port).expect("watch the channel port");
    (domid, channel, port)
}

pub(super) fn start_channel(platform: &mut Platform, lp: &mut Loop, _index: usize) -> ChannelState {
    let (_, channel, port) = channel_to_testdom(platform, lp, "channel", "");
    let mut c = ChannelState {
        channel,
        port,
        sent: 0,
        answered: 0,
        started: xcp_runtime::time::now_ns(),
    };
    pump_channel("channel", &mut c);
    c
}

pub(super) fn pump_channel(name: &str, c: &mut ChannelState) {
    let mut kick = false;
    match c.channel.flush() {
        Ok(n) | Err(SendError::WouldBlock(n)) => kick |= n.kick(),
        Err(e) => fail(name, &alloc::format!("channel: {e:?}")),
    }
    loop {
        match c.channel.recv::<Pong>() {
            Ok(Some(pong)) => {
                let expected = payload(c.answered);
                let good = Pong {
                    seq: c.answered,
                    len: expected.len() as u32,
                    sum: checksum(&expected),
                };
                if pong != good {
                    error!("answer {} is {pong:?}, expected {good:?}", c.answered);
                    fail(name, "a message arrived wrong or out of order");
                }
                c.answered += 1;
            }
            Ok(None) => break,
            Err(e) => fail(name, &alloc::format!("channel: {e:?}")),
        }
    }
    while c.sent < CHANNEL_MESSAGES {
        let ping = Ping {
            seq: c.sent,
            payload: payload(c.sent),
        };
        match c.channel.send(&ping) {
            Ok(n) => {
                kick |= n.kick();
                c.sent += 1;
            }
            Err(SendError::WouldBlock(n)) => {
                kick |= n.kick();
                break;
            }
            Err(e) => fail(name, &alloc::format!("channel: {e:?}")),
        }
    }
    kick |= c.channel.take_notify().kick();
    if kick {
        xcp_runtime::evtchn::send(c.port);
    }
    if c.answered == CHANNEL_MESSAGES {
        let ms = (xcp_runtime::time::now_ns() - c.started) / 1_000_000;
        info!("selftest channel: {CHANNEL_MESSAGES} messages each way checked in {ms} ms");
        pass(name, "inter-domain channel round trip verified");
    }
}
