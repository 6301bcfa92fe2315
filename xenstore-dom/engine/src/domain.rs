//! Domain management: INTRODUCE, RELEASE, RESUME, SET_TARGET, domain paths,
//! features and quotas.
//!
//! Read first: docs/misc/xenstore.txt "Domain management". INTRODUCE opens
//! the domain's connection and returns [`Effect::MapRing`]; RELEASE (or a
//! board reporting the domain dead) closes it, drops its watches and
//! transactions, removes the nodes it owned and strips it from every ACL,
//! so a later domain reusing the domid inherits nothing (XSA-322), and
//! fires `@releaseDomain`. A second RELEASE answers ENOENT (XSA-233/425).

use alloc::string::String;
use alloc::vec::Vec;

use crate::dispatch::{args, decimal, domid_arg, one_arg, push_decimal, OK};
use crate::engine::{Domain, Effect, Engine, Settings, SUPPORTED_FEATURES};
use crate::error::{XsError, XsResult};
use crate::ops;
use crate::path::{domain_path, parent, INTRODUCE_DOMAIN, RELEASE_DOMAIN};
use crate::perms::Caller;
use crate::quota::Quotas;
use crate::store::Db;
use crate::watch::{ConnId, Event};
use crate::wire::{self, Header, MsgType};

/// First reserved domid (DOMID_FIRST_RESERVED in xen.h).
pub use xen_abi::xen::DOMID_FIRST_RESERVED;

fn decimal_reply(n: u64) -> Vec<u8> {
    let mut s = String::new();
    push_decimal(&mut s, n);
    let mut v = s.into_bytes();
    v.push(0);
    v
}

fn signed_decimal(raw: &[u8]) -> XsResult<i64> {
    match raw.split_first() {
        Some((b'-', rest)) => Ok(-i64::try_from(decimal(rest)?).map_err(|_| XsError::Einval)?),
        _ => i64::try_from(decimal(raw)?).map_err(|_| XsError::Einval),
    }
}

impl Engine {
    pub(crate) fn dispatch_domain(
        &mut self,
        conn: ConnId,
        caller: &Caller,
        header: &Header,
        payload: &[u8],
    ) -> XsResult<Vec<u8>> {
        match header.ty {
            MsgType::Introduce => {
                // <domid>|<gfn>|<evtchn>|? -- a trailing reserved field is allowed.
                let mut it = wire::split_args(payload);
                let domid = domid_arg(it.next().ok_or(XsError::Einval)?)?;
                let mfn = signed_decimal(it.next().ok_or(XsError::Einval)?)?;
                let evtchn = u32::try_from(decimal(it.next().ok_or(XsError::Einval)?)?)
                    .map_err(|_| XsError::Einval)?;
                // "<domid> must be a real domain id (not 0 ...)": dom0's own
                // ring, in a xenstore stub domain, is introduced by the board.
                if domid == 0 {
                    return Err(XsError::Einval);
                }
                self.introduce(domid, mfn, evtchn)?;
                Ok(OK.to_vec())
            }
            MsgType::Release => {
                self.release(domid_arg(one_arg(payload)?)?)?;
                Ok(OK.to_vec())
            }
            MsgType::GetDomainPath => {
                let domid = domid_arg(one_arg(payload)?)?;
                let mut v = domain_path(domid).into_bytes();
                v.push(0);
                Ok(v)
            }
            MsgType::IsDomainIntroduced => {
                let domid = domid_arg(one_arg(payload)?)?;
                let yes = domid == 0 || self.domains.contains_key(&domid);
                Ok(if yes {
                    b"T\0".to_vec()
                } else {
                    b"F\0".to_vec()
                })
            }
            MsgType::Resume => {
                let domid = domid_arg(one_arg(payload)?)?;
                let domain = self.domains.get_mut(&domid).ok_or(XsError::Enoent)?;
                domain.shutdown_reported = false;
                Ok(OK.to_vec())
            }
            MsgType::SetTarget => {
                let [d, t] = args::<2>(payload)?;
                let (domid, target) = (domid_arg(d)?, domid_arg(t)?);
                if !self.domains.contains_key(&domid) || !self.domains.contains_key(&target) {
                    return Err(XsError::Enoent);
                }
                self.targets.insert(domid, target);
                Ok(OK.to_vec())
            }
            MsgType::GetFeature => {
                let body = one_arg(payload)?;
                let domid = if body.is_empty() {
                    caller.domid
                } else if caller.privileged {
                    domid_arg(body)?
                } else {
                    return Err(XsError::Eacces);
                };
                let f = self
                    .settings
                    .get(&domid)
                    .map_or(SUPPORTED_FEATURES, |s| s.features);
                Ok(decimal_reply(u64::from(f)))
            }
            MsgType::SetFeature => {
                let [d, v] = args::<2>(payload)?;
                let domid = domid_arg(d)?;
                let value = u32::try_from(decimal(v)?).map_err(|_| XsError::Einval)?;
                if value & !SUPPORTED_FEATURES != 0 {
                    return Err(XsError::Einval);
                }
                // "SET_FEATURE for a domain will be rejected after the
                // INTRODUCE command for this domain has been sent."
                if self.domains.contains_key(&domid) {
                    return Err(XsError::Ebusy);
                }
                self.settings_mut(domid).features = value;
                Ok(OK.to_vec())
            }
            MsgType::GetQuota => {
                let parts: Vec<&[u8]> = wire::split_args(payload).collect();
                let value = match parts.as_slice() {
                    [] => {
                        let mut v = Quotas::names().into_bytes();
                        v.push(0);
                        return Ok(v);
                    }
                    [name] => self.config.quotas.get(name),
                    [d, name] => self.quotas_for(domid_arg(d)?).get(name),
                    _ => return Err(XsError::Einval),
                };
                Ok(decimal_reply(u64::from(value.ok_or(XsError::Einval)?)))
            }
            MsgType::SetQuota => {
                let parts: Vec<&[u8]> = wire::split_args(payload).collect();
                let (domid, name, v) = match parts.as_slice() {
                    [name, v] => (None, *name, *v),
                    [d, name, v] => (Some(domid_arg(d)?), *name, *v),
                    _ => return Err(XsError::Einval),
                };
                let value = u32::try_from(decimal(v)?).map_err(|_| XsError::Einval)?;
                let ok = match domid {
                    None => self.config.quotas.set(name, value),
                    Some(d) => {
                        let mut q = self.quotas_for(d);
                        let ok = q.set(name, value);
                        if ok {
                            self.settings_mut(d).quotas = q;
                        }
                        ok
                    }
                };
                if ok {
                    Ok(OK.to_vec())
                } else {
                    Err(XsError::Einval)
                }
            }
            _ => {
                let _ = conn;
                Err(XsError::Enosys)
            }
        }
    }

    fn settings_mut(&mut self, domid: u16) -> &mut Settings {
        let defaults = Settings {
            quotas: self.config.quotas,
            features: SUPPORTED_FEATURES,
        };
        self.settings.entry(domid).or_insert(defaults)
    }

    /// INTRODUCE `domid` with its ring frame and event channel: opens (or,
    /// for a re-introduction, keeps) its connection, records
    /// [`Effect::MapRing`] and fires `@introduceDomain`. The board may
    /// introduce dom0 this way (a xenstore stub domain serves dom0 over a
    /// ring); the INTRODUCE message may not.
    pub fn introduce(&mut self, domid: u16, mfn: i64, evtchn: u32) -> XsResult<ConnId> {
        if domid >= DOMID_FIRST_RESERVED {
            return Err(XsError::Einval);
        }
        let conn = match self.domains.get(&domid).map(|d| d.conn) {
            // A re-introduction (resume, event channel recreated) keeps the
            // connection; one that broke the protocol starts afresh.
            Some(c) if self.conns.get(&c).is_some_and(|conn| !conn.broken) => c,
            Some(c) => {
                self.close(c);
                self.connect(domid)
            }
            None => self.connect(domid),
        };
        self.domains.insert(
            domid,
            Domain {
                conn,
                mfn,
                evtchn,
                shutdown_reported: false,
            },
        );
        let features = self
            .settings
            .get(&domid)
            .map_or(SUPPORTED_FEATURES, |s| s.features);
        self.effects.push(Effect::MapRing {
            conn,
            domid,
            mfn,
            evtchn,
            features,
        });
        self.fire_special(INTRODUCE_DOMAIN);
        Ok(conn)
    }

    /// A board saw `domid` shut down (VIRQ_DOM_EXC) but not yet destroyed:
    /// fire `@releaseDomain` once, until RESUME re-arms it. ENOENT if the
    /// domain is not introduced.
    pub fn domain_shutdown(&mut self, domid: u16) -> XsResult<()> {
        let domain = self.domains.get_mut(&domid).ok_or(XsError::Enoent)?;
        if !domain.shutdown_reported {
            domain.shutdown_reported = true;
            self.fire_special(RELEASE_DOMAIN);
        }
        Ok(())
    }

    /// RELEASE `domid` (also what a board calls when it sees the domain
    /// die): close its connection, forget it, clean the tree, fire
    /// `@releaseDomain`. ENOENT if it is not introduced, EINVAL for a
    /// privileged domain.
    pub fn release(&mut self, domid: u16) -> XsResult<()> {
        // Releasing a privileged domain would delete every node it owns
        // (dom0 owns most of the tree): never.
        if self.caller_for(domid).privileged {
            return Err(XsError::Einval);
        }
        let domain = self.domains.remove(&domid).ok_or(XsError::Enoent)?;
        self.close(domain.conn);
        self.settings.remove(&domid);
        self.reported.remove(&domid);
        self.targets.retain(|dm, t| *dm != domid && *t != domid);
        self.forget_domain(domid);
        self.effects.push(Effect::UnmapRing {
            conn: domain.conn,
            domid,
        });
        self.fire_special(RELEASE_DOMAIN);
        Ok(())
    }

    /// Remove the subtrees owned by `domid` and its ACL entries elsewhere.
    fn forget_domain(&mut self, domid: u16) {
        let owned = self.store.paths_where(|n| n.perms.owner() == domid);
        let mut events = Vec::new();
        for p in owned {
            // An ancestor's removal may have taken it already.
            let Some(node) = self.store.node(&p) else {
                continue;
            };
            let perms = node.perms.clone();
            let Some(parent_path) = parent(&p) else {
                continue;
            };
            let Ok(doomed) = ops::subtree(&mut self.store, &p) else {
                continue;
            };
            let below = ops::distinct_perms(&mut self.store, &doomed).unwrap_or_default();
            for d in &doomed {
                let _ = self.store.del(d);
            }
            if let Some(pn) = self.store.node(parent_path).cloned() {
                let mut pn = pn;
                pn.children.remove(crate::path::basename(&p));
                let _ = self.store.put(parent_path, pn);
            }
            events.push(Event::removed(&p, perms, below));
        }
        for p in self
            .store
            .paths_where(|n| n.perms.entries()[1..].iter().any(|e| e.domid == domid))
        {
            self.store.forget_acl(&p, domid);
        }
        for perms in self.special_perms.iter_mut() {
            perms.forget(domid);
        }
        self.fire(&events);
    }
}
