//! The single-threaded event loop: runs timers and event-channel handlers,
//! and sleeps in Xen (SCHEDOP_poll, upcalls stay masked) until a watched port
//! is pending or the next timer is due.

use alloc::vec::Vec;

use crate::timer::{TimerId, TimerQueue};

/// Xen's limit on ports in one SCHEDOP_poll.
pub const MAX_POLL_PORTS: usize = 128;

/// What a domain does when something happens.
pub trait App {
    /// A watched event channel fired.
    fn on_event(&mut self, lp: &mut Loop, port: u32);
    /// A timer armed with `token` expired.
    fn on_timer(&mut self, lp: &mut Loop, token: u64);
}

/// Timers, watched ports and the stop flag.
#[derive(Default)]
pub struct Loop {
    timers: TimerQueue<u64>,
    ports: Vec<u32>,
    stopped: bool,
}

impl Loop {
    /// An empty loop.
    pub fn new() -> Self {
        Self::default()
    }

    /// Dispatches `port` to `App::on_event` when it fires.
    pub fn watch(&mut self, port: u32) -> Result<(), xen_sys::Errno> {
        if self.ports.contains(&port) {
            return Ok(());
        }
        if self.ports.len() >= MAX_POLL_PORTS {
            return Err(xen_sys::Errno::ENOSPC);
        }
        self.ports.push(port);
        Ok(())
    }

    /// Stops dispatching `port`.
    pub fn unwatch(&mut self, port: u32) {
        self.ports.retain(|&p| p != port);
    }

    /// Arms a timer `delay_ns` from now.
    pub fn after(&mut self, delay_ns: u64, token: u64) -> TimerId {
        self.timers.insert(crate::time::now_ns() + delay_ns, token)
    }

    /// Disarms a timer.
    pub fn cancel(&mut self, id: TimerId) {
        self.timers.cancel(id);
    }

    /// Makes `run` return after the current dispatch.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Runs until `stop`, or until nothing could ever wake us.
    pub fn run(&mut self, app: &mut impl App) {
        while !self.stopped {
            let now = crate::time::now_ns();
            while let Some((_, token)) = self.timers.pop_expired(now) {
                app.on_timer(self, token);
            }
            let ports = self.ports.clone();
            for port in ports {
                if crate::evtchn::test_and_clear_pending(port) {
                    app.on_event(self, port);
                }
            }
            if self.stopped {
                break;
            }
            let deadline = self.timers.next_deadline();
            if self.ports.is_empty() && deadline.is_none() {
                log::warn!("event loop: nothing left to wait for");
                break;
            }
            // Xen checks the ports' pending bits before blocking, so an event
            // that arrived since the scan above still wakes us at once.
            // SAFETY: the port list lives across the call.
            let _ = unsafe { xen_sys::sched::poll(&self.ports, deadline.map_or(0, |d| d.max(1))) };
        }
    }
}

/// Sleeps until any event reaches this domain (no ports named, no timeout).
pub fn idle() {
    // SAFETY: an empty port list; Xen wakes us on any event.
    let _ = unsafe { xen_sys::sched::poll(&[], 0) };
}

/// Sleeps until `port` is pending or system time reaches `deadline` (ns;
/// 0 = no deadline); clears and returns the pending bit.
pub fn poll_one(port: u32, deadline: u64) -> bool {
    if crate::evtchn::test_and_clear_pending(port) {
        return true;
    }
    // SAFETY: a one-port list that lives across the call.
    let _ = unsafe { xen_sys::sched::poll(&[port], deadline) };
    crate::evtchn::test_and_clear_pending(port)
}

/// Sleeps until any of `ports` (at most 64) is pending or system time
/// reaches `deadline` (ns; 0 = no deadline); clears the pending bits and
/// returns them as a mask (bit i for `ports[i]`), 0 on timeout.
pub fn poll_ports(ports: &[u32], deadline: u64) -> u64 {
    assert!(ports.len() <= 64, "poll_ports takes at most 64 ports");
    let take = || {
        ports.iter().enumerate().fold(0u64, |mask, (i, &port)| {
            if crate::evtchn::test_and_clear_pending(port) {
                mask | 1 << i
            } else {
                mask
            }
        })
    };
    let fired = take();
    if fired != 0 {
        return fired;
    }
    // SAFETY: the port list lives across the call; Xen checks the pending
    // bits before blocking, so an event since `take` still wakes us.
    let _ = unsafe { xen_sys::sched::poll(ports, deadline) };
    take()
}

/// Sleeps until system time `deadline` (ns) or any event, whichever first.
pub fn sleep_until(deadline: u64) {
    // SAFETY: an empty port list; Xen wakes us at the deadline or on an event.
    let _ = unsafe { xen_sys::sched::poll(&[], deadline.max(1)) };
}
