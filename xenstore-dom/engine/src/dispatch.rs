//! Request dispatch: payload parsing per message type, tree operations,
//! watches and transactions.
//!
//! Read first: docs/misc/xenstore.txt (payload syntax per type). Domain
//! management requests live in `domain.rs`.

use alloc::string::String;
use alloc::vec::Vec;

use crate::engine::Engine;
use crate::error::{XsError, XsResult};
use crate::ops;
use crate::path::{self, canonical, canonical_watch, special_node};
use crate::perms::Perms;
use crate::store::LiveView;
use crate::txn::Txn;
use crate::watch::{ConnId, Event, Watch};
use crate::wire::{self, Header, MsgType};

/// "OK" + nul: the default success payload.
pub(crate) const OK: &[u8] = b"OK\0";

/// The single string argument of READ, RM, ...: one string, its trailing
/// nul optional; an embedded nul is EINVAL.
pub(crate) fn one_arg(payload: &[u8]) -> XsResult<&[u8]> {
    let body = payload.strip_suffix(&[0]).unwrap_or(payload);
    if body.contains(&0) {
        return Err(XsError::Einval);
    }
    Ok(body)
}

/// Exactly `n` nul-terminated strings (the last nul optional).
pub(crate) fn args<const N: usize>(payload: &[u8]) -> XsResult<[&[u8]; N]> {
    let mut out: [&[u8]; N] = [&[]; N];
    let mut it = wire::split_args(payload);
    for slot in out.iter_mut() {
        *slot = it.next().ok_or(XsError::Einval)?;
    }
    if it.next().is_some() {
        return Err(XsError::Einval);
    }
    Ok(out)
}

/// A decimal number (digits only, bounded length).
pub(crate) fn decimal(raw: &[u8]) -> XsResult<u64> {
    if raw.is_empty() || raw.len() > 19 || !raw.iter().all(u8::is_ascii_digit) {
        return Err(XsError::Einval);
    }
    Ok(raw
        .iter()
        .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')))
}

/// A domid in decimal, 0..=65535.
pub(crate) fn domid_arg(raw: &[u8]) -> XsResult<u16> {
    u16::try_from(decimal(raw)?).map_err(|_| XsError::Einval)
}

impl Engine {
    pub(crate) fn dispatch(
        &mut self,
        conn: ConnId,
        header: &Header,
        payload: &[u8],
    ) -> XsResult<Vec<u8>> {
        let caller = self.caller(conn);
        let needs_priv = matches!(
            header.ty,
            MsgType::Control
                | MsgType::Introduce
                | MsgType::Release
                | MsgType::IsDomainIntroduced
                | MsgType::Resume
                | MsgType::SetTarget
                | MsgType::SetFeature
                | MsgType::GetQuota
                | MsgType::SetQuota
        );
        let known = !matches!(
            header.ty,
            MsgType::Unknown(_) | MsgType::WatchEvent | MsgType::Error
        );
        if !known {
            return Err(XsError::Enosys);
        }
        if needs_priv && !caller.privileged {
            return Err(XsError::Eacces);
        }
        // Requests other than WATCH/UNWATCH must name an open transaction
        // (or none); TRANSACTION_START may not be sent inside one.
        let uses_tx = !matches!(header.ty, MsgType::Watch | MsgType::Unwatch);
        if uses_tx && header.tx_id != 0 {
            if header.ty == MsgType::TransactionStart {
                return Err(XsError::Ebusy);
            }
            let open = self
                .conns
                .get(&conn)
                .is_some_and(|c| c.txns.contains_key(&header.tx_id));
            if !open {
                return Err(XsError::Enoent);
            }
        }
        let tx_id = if uses_tx { header.tx_id } else { 0 };
        match header.ty {
            MsgType::Read => {
                let p = canonical(caller.domid, one_arg(payload)?)?;
                self.with_db(conn, tx_id, |db, _| ops::read(db, &caller, &p))
            }
            MsgType::Directory => {
                let p = canonical(caller.domid, one_arg(payload)?)?;
                self.with_db(conn, tx_id, |db, _| ops::directory(db, &caller, &p))
            }
            MsgType::DirectoryPart => {
                let [raw, off] = args::<2>(payload)?;
                let p = canonical(caller.domid, raw)?;
                let offset = usize::try_from(decimal(off)?).map_err(|_| XsError::Einval)?;
                self.with_db(conn, tx_id, |db, _| {
                    ops::directory_part(db, &caller, &p, offset)
                })
            }
            MsgType::GetPerms => {
                let raw = one_arg(payload)?;
                if let Some(name) = special_node(raw) {
                    return Ok(self.special_perms(name).to_wire());
                }
                let p = canonical(caller.domid, raw)?;
                self.with_db(conn, tx_id, |db, _| ops::get_perms(db, &caller, &p))
            }
            MsgType::Write => {
                let (raw, value) = match payload.iter().position(|b| *b == 0) {
                    Some(i) => (&payload[..i], &payload[i + 1..]),
                    None => return Err(XsError::Einval),
                };
                let p = canonical(caller.domid, raw)?;
                let limits = self.limits_for(&caller);
                self.with_db(conn, tx_id, |db, ev| {
                    *ev = ops::write(db, &caller, limits.as_ref(), &p, value, false)?;
                    Ok(OK.to_vec())
                })
            }
            MsgType::Mkdir => {
                let p = canonical(caller.domid, one_arg(payload)?)?;
                let limits = self.limits_for(&caller);
                self.with_db(conn, tx_id, |db, ev| {
                    *ev = ops::write(db, &caller, limits.as_ref(), &p, &[], true)?;
                    Ok(OK.to_vec())
                })
            }
            MsgType::Rm => {
                let p = canonical(caller.domid, one_arg(payload)?)?;
                self.with_db(conn, tx_id, |db, ev| {
                    *ev = ops::rm(db, &caller, &p)?;
                    Ok(OK.to_vec())
                })
            }
            MsgType::SetPerms => {
                let mut it = wire::split_args(payload);
                let raw = it.next().ok_or(XsError::Einval)?;
                let perms = Perms::parse(it)?;
                if let Some(name) = special_node(raw) {
                    if !caller.privileged {
                        return Err(XsError::Eacces);
                    }
                    *self.special_perms_mut(name) = perms;
                    return Ok(OK.to_vec());
                }
                let p = canonical(caller.domid, raw)?;
                let limits = self.limits_for(&caller);
                self.with_db(conn, tx_id, |db, ev| {
                    *ev = ops::set_perms(db, &caller, limits.as_ref(), &p, perms)?;
                    Ok(OK.to_vec())
                })
            }
            MsgType::Watch => self.watch(conn, payload),
            MsgType::Unwatch => self.unwatch(conn, payload),
            MsgType::ResetWatches => {
                self.watches.retain(|w| w.conn != conn);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.watches = 0;
                    c.txns.clear();
                }
                Ok(OK.to_vec())
            }
            MsgType::TransactionStart => self.transaction_start(conn),
            MsgType::TransactionEnd => self.transaction_end(conn, header.tx_id, payload),
            MsgType::Control => Err(XsError::Enosys),
            _ => self.dispatch_domain(conn, &caller, header, payload),
        }
    }

    /// Run `op` against the live tree (firing its events now) or the
    /// transaction `tx_id` (recording them for commit).
    fn with_db<R>(
        &mut self,
        conn: ConnId,
        tx_id: u32,
        op: impl FnOnce(&mut dyn crate::store::Db, &mut Vec<Event>) -> XsResult<R>,
    ) -> XsResult<R> {
        let mut events = Vec::new();
        let domid = self.conns.get(&conn).ok_or(XsError::Enoent)?.domid;
        let budget = self.byte_budget(domid);
        if tx_id == 0 {
            let mut view = LiveView {
                store: &mut self.store,
                budget,
            };
            let r = op(&mut view, &mut events)?;
            self.fire(&events);
            return Ok(r);
        }
        let c = self.conns.get_mut(&conn).ok_or(XsError::Enoent)?;
        let txn = c.txns.get_mut(&tx_id).ok_or(XsError::Enoent)?;
        let r = {
            let mut view = txn.view(&self.store, budget);
            op(&mut view, &mut events)?
        };
        for e in events {
            txn.record(e);
        }
        Ok(r)
    }

    fn watch(&mut self, conn: ConnId, payload: &[u8]) -> XsResult<Vec<u8>> {
        let caller = self.caller(conn);
        // <wpath>|<token>|[<depth>|]: a depth is accepted and ignored.
        let mut it = wire::split_args(payload);
        let raw = it.next().ok_or(XsError::Einval)?;
        let token = it.next().ok_or(XsError::Einval)?;
        let (abs, relative) = canonical_watch(caller.domid, raw)?;
        let c = self.conns.get(&conn).ok_or(XsError::Enoent)?;
        if self
            .watches
            .iter()
            .any(|w| w.conn == conn && w.path == abs && w.token == token)
        {
            return Err(XsError::Eexist);
        }
        if !caller.privileged {
            let limit = self.quotas_for(caller.domid).watches;
            if limit != 0 && c.watches >= limit as usize {
                return Err(XsError::E2big);
            }
        }
        let relative_prefix = relative.then(|| {
            let mut p = path::domain_path(caller.domid);
            p.push('/');
            p
        });
        let w = Watch {
            conn,
            path: abs,
            token: token.to_vec(),
            relative_prefix,
        };
        // "When a watch is first set up it is triggered once straight away,
        // with <path> equal to <wpath>" -- after the OK reply.
        if let Some(body) = w.event_payload(&w.path) {
            self.after_reply
                .push((conn, wire::encode(MsgType::WatchEvent, 0, 0, &body)));
        }
        self.watches.push(w);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.watches += 1;
        }
        Ok(OK.to_vec())
    }

    fn unwatch(&mut self, conn: ConnId, payload: &[u8]) -> XsResult<Vec<u8>> {
        let caller = self.caller(conn);
        let mut it = wire::split_args(payload);
        let raw = it.next().ok_or(XsError::Einval)?;
        let token = it.next().ok_or(XsError::Einval)?;
        let (abs, _) = canonical_watch(caller.domid, raw)?;
        let pos = self
            .watches
            .iter()
            .position(|w| w.conn == conn && w.path == abs && w.token == token)
            .ok_or(XsError::Enoent)?;
        self.watches.remove(pos);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.watches = c.watches.saturating_sub(1);
        }
        Ok(OK.to_vec())
    }

    fn transaction_start(&mut self, conn: ConnId) -> XsResult<Vec<u8>> {
        let caller = self.caller(conn);
        let q = self.quotas_for(caller.domid);
        let c = self.conns.get_mut(&conn).ok_or(XsError::Enoent)?;
        if !caller.privileged && q.transactions != 0 && c.txns.len() >= q.transactions as usize {
            return Err(XsError::Enospc);
        }
        // Find a free non-zero id; at most `txns.len() + 1` probes.
        let mut id = c.next_tx_id.max(1);
        while c.txns.contains_key(&id) {
            id = id.wrapping_add(1).max(1);
        }
        c.next_tx_id = id.wrapping_add(1).max(1);
        let max = if caller.privileged {
            0
        } else {
            q.transaction_nodes as usize
        };
        c.txns.insert(id, Txn::new(max));
        let mut out = String::new();
        push_decimal(&mut out, u64::from(id));
        let mut bytes = out.into_bytes();
        bytes.push(0);
        Ok(bytes)
    }

    fn transaction_end(&mut self, conn: ConnId, tx_id: u32, payload: &[u8]) -> XsResult<Vec<u8>> {
        let commit = match one_arg(payload)? {
            b"T" => true,
            b"F" => false,
            _ => return Err(XsError::Einval),
        };
        let c = self.conns.get_mut(&conn).ok_or(XsError::Enoent)?;
        let txn = c.txns.remove(&tx_id).ok_or(XsError::Enoent)?;
        if commit {
            let events = txn.commit(&mut self.store)?;
            self.fire(&events);
        }
        Ok(OK.to_vec())
    }
}

/// Append `n` in decimal.
pub(crate) fn push_decimal(out: &mut String, n: u64) {
    use core::fmt::Write;
    // Writing to a String cannot fail.
    let _ = write!(out, "{n}");
}
