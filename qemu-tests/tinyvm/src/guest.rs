//! What tinyvm says to xenstore, and how it obeys `control/shutdown`.
//!
//! Read first: xen docs/misc/xenstore-paths.pandoc (`control/shutdown`,
//! `control/feature-*`, `data/`), xapi's `xapi_guest_agent.ml` (the
//! `data/` keys xe-guest-utilities writes and `VM_guest_metrics` shows),
//! ../../../toolstack-dom0/xenapi/src/guest_metrics.rs.
//!
//! As a Linux guest with xe-guest-utilities: the guest says it can power
//! off and reboot (`control/feature-poweroff`, `control/feature-reboot` =
//! 1), writes its OS keys and then `data/updated` (the agent's "my keys are
//! complete"), and watches `control/shutdown`. On `poweroff` or `halt` it
//! acknowledges by writing `control/shutdown` = "" (as Linux's
//! `shutdown_handler` does) and powers off; on `reboot` the same and
//! reboots; anything else is ignored. Paths are relative: xenstore takes
//! them below the guest's home, `/local/domain/<domid>`.

use crate::store::{Channel, Client, StoreError};
use xcp_ring::SharedPage;

/// The keys the guest writes first, in order (`data/updated` last).
pub const ANNOUNCE: &[(&str, &str)] = &[
    ("control/feature-poweroff", "1"),
    ("control/feature-reboot", "1"),
    ("data/os_name", crate::NAME),
    ("data/os_distro", crate::NAME),
    ("data/os_uname", env!("CARGO_PKG_VERSION")),
    ("data/os_majorver", "0"),
    ("data/os_minorver", "1"),
    ("data/updated", "1"),
];

/// The node the guest watches.
pub const SHUTDOWN: &str = "control/shutdown";
const TOKEN: &str = "tinyvm-shutdown";

/// How the conversation ended: what the guest does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `SCHEDOP_shutdown(SHUTDOWN_poweroff)`.
    Poweroff,
    /// `SCHEDOP_shutdown(SHUTDOWN_reboot)`.
    Reboot,
    /// xenstore broke the conversation: nothing more to say; idle.
    Broken,
}

/// What `control/shutdown` asks for: `Some` for a request the guest obeys.
pub fn request(value: &[u8]) -> Option<Outcome> {
    match value {
        b"poweroff" | b"halt" => Some(Outcome::Poweroff),
        b"reboot" => Some(Outcome::Reboot),
        _ => None,
    }
}

/// Announces the guest, then waits for a shutdown request and returns what
/// to do. `log` gets one line per event worth telling.
pub fn run<P: SharedPage, C: Channel>(
    client: &mut Client<P, C>,
    log: &mut impl FnMut(&str),
) -> Outcome {
    for (path, value) in ANNOUNCE {
        match client.write(path, value) {
            Ok(()) => {}
            Err(StoreError::Broken) => return broken(log),
            Err(e) => log(&alloc::format!("tinyvm: write {path}: {e:?}")),
        }
    }
    loop {
        match client.watch(SHUTDOWN, TOKEN) {
            Ok(()) => break,
            Err(StoreError::Broken) => return broken(log),
            Err(e) => {
                log(&alloc::format!("tinyvm: watch {SHUTDOWN}: {e:?}, again"));
                if client.wait_watch_event().is_err() {
                    return broken(log);
                }
            }
        }
    }
    log("tinyvm: ready, watching control/shutdown");
    loop {
        if client.wait_watch_event().is_err() {
            return broken(log);
        }
        let value = match client.read(SHUTDOWN) {
            Ok(v) => v,
            Err(StoreError::Broken) => return broken(log),
            // Absent or unreadable: nothing asked.
            Err(_) => continue,
        };
        let Some(outcome) = request(&value) else {
            if !value.is_empty() {
                log("tinyvm: ignoring an unknown control/shutdown request");
            }
            continue;
        };
        // The acknowledgement dom0 waits for; a refusal changes nothing.
        if let Err(e) = client.write(SHUTDOWN, "") {
            log(&alloc::format!("tinyvm: acknowledge {SHUTDOWN}: {e:?}"));
        }
        return outcome;
    }
}

fn broken(log: &mut impl FnMut(&str)) -> Outcome {
    log("tinyvm: xenstore broke the conversation");
    Outcome::Broken
}

#[cfg(test)]
mod tests {
    use alloc::string::String;
    use alloc::vec::Vec;
    use core::cell::RefCell;

    use xcp_xs_wire::MsgType;

    use super::*;
    use crate::store::fake::{Server, Store};

    fn conversation(hook: fn(&mut Store)) -> (Outcome, Store, Vec<String>) {
        conversation_with(Store {
            hook: Some(hook),
            ..Store::default()
        })
    }

    /// The guest's whole conversation with `store`: its outcome, the
    /// store after it, the lines it logged.
    fn conversation_with(store: Store) -> (Outcome, Store, Vec<String>) {
        let page = RefCell::new([0u8; 4096]);
        let store = RefCell::new(store);
        let mut client = Client::new(
            &page,
            Server {
                page: &page,
                store: &store,
            },
        );
        let mut lines = Vec::new();
        let outcome = run(&mut client, &mut |l: &str| lines.push(l.into()));
        (outcome, store.into_inner(), lines)
    }

    /// Once the watch is set, asks for `value` (once).
    fn ask(store: &mut Store, value: &str) {
        let watching = store.watches.len() == 1;
        if watching && !store.nodes.contains_key("asked") {
            store.nodes.insert("asked".into(), String::new());
            store.set(SHUTDOWN, value);
        }
    }

    #[test]
    fn announces_then_powers_off_and_acknowledges() {
        let (outcome, store, lines) = conversation(|s| ask(s, "poweroff"));
        assert_eq!(outcome, Outcome::Poweroff);
        for (path, value) in ANNOUNCE {
            assert_eq!(store.nodes.get(*path).map(String::as_str), Some(*value));
        }
        assert_eq!(store.nodes.get(SHUTDOWN).map(String::as_str), Some(""));
        let writes: Vec<_> = store
            .log
            .iter()
            .filter(|(t, _)| *t == MsgType::Write)
            .collect();
        assert_eq!(writes.len(), ANNOUNCE.len() + 1);
        assert_eq!(lines, ["tinyvm: ready, watching control/shutdown"]);
    }

    #[test]
    fn halt_reboot_and_nonsense() {
        assert_eq!(conversation(|s| ask(s, "halt")).0, Outcome::Poweroff);
        assert_eq!(conversation(|s| ask(s, "reboot")).0, Outcome::Reboot);
        // "suspend" is ignored; a later poweroff is obeyed.
        let (outcome, store, lines) = conversation(|s| {
            ask(s, "suspend");
            if s.nodes.get(SHUTDOWN).map(String::as_str) == Some("suspend") {
                s.set(SHUTDOWN, "poweroff");
            }
        });
        assert_eq!(outcome, Outcome::Poweroff);
        assert!(
            store
                .log
                .iter()
                .filter(|(t, _)| *t == MsgType::Read)
                .count()
                >= 1
        );
        assert!(lines.len() <= 2, "{lines:?}");
    }

    #[test]
    fn refused_writes_are_logged_not_fatal() {
        let (outcome, store, lines) = conversation_with(Store {
            hook: Some(|s| ask(s, "poweroff")),
            refuse: Some("data/os_distro"),
            ..Store::default()
        });
        assert_eq!(outcome, Outcome::Poweroff);
        assert_eq!(
            lines[0],
            "tinyvm: write data/os_distro: Refused(Some(Eacces))"
        );
        assert!(store.nodes.contains_key("data/updated"));
    }

    #[test]
    fn a_broken_stream_ends_in_broken() {
        let page = RefCell::new([0u8; 4096]);
        let store = RefCell::new(Store::default());
        store.borrow_mut().inject = alloc::vec![0xff; 16];
        let mut client = Client::new(
            &page,
            Server {
                page: &page,
                store: &store,
            },
        );
        let outcome = run(&mut client, &mut |_: &str| {});
        assert_eq!(outcome, Outcome::Broken);
    }
}
