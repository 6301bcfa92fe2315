//! Tree operations (READ, WRITE, MKDIR, RM, DIRECTORY, GET/SET_PERMS) over
//! a [`Db`]: the live tree or a transaction's view.
//!
//! Read first: docs/misc/xenstore.txt "Database read, write and permissions
//! operations". Each operation touches (reads) every node it will change
//! before changing any, so a transaction that runs out of its node quota
//! fails with nothing half-done. Walks use an explicit stack (XSA-418).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;

use crate::error::{XsError, XsResult};
use crate::path::{basename, join, parent};
use crate::perms::{Caller, Perms};
use crate::store::{Db, Node};
use crate::watch::Event;
use crate::wire::PAYLOAD_MAX;

/// Per-domain limits applied to unprivileged callers (0 = unlimited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Nodes the caller may own.
    pub nodes: u32,
    /// Largest value, in bytes.
    pub node_size: u32,
    /// Most permission entries on one node.
    pub perms: u32,
}

fn over(limit: u32, value: usize) -> bool {
    limit != 0 && value > limit as usize
}

/// ENOMEM unless `caller` can be charged for putting every node of `plan`
/// (distinct paths) within the view's byte budget (C's `domain_memory_add`
/// answers ENOMEM at the hard limit). Checked before anything changes.
fn afford(db: &dyn Db, caller: &Caller, plan: &[(&str, &Node)]) -> XsResult<()> {
    let Some(budget) = db.budget() else {
        return Ok(());
    };
    let need: i64 = plan
        .iter()
        .map(|(p, n)| db.charge(caller.domid, p, n))
        .sum();
    if need > 0 && need as u64 > budget as u64 {
        return Err(XsError::Enomem);
    }
    Ok(())
}

/// The error for a missing node: EACCES if the nearest existing ancestor
/// hides it from the caller, ENOENT otherwise (C's `errno_from_parents`).
fn missing(db: &mut dyn Db, caller: &Caller, path: &str, write: bool) -> XsResult<XsError> {
    let mut cur = parent(path);
    while let Some(p) = cur {
        if let Some(node) = db.get(p)? {
            let r = node.perms.rights(caller);
            let ok = if write { r.write } else { r.read };
            return Ok(if ok { XsError::Enoent } else { XsError::Eacces });
        }
        cur = parent(p);
    }
    Ok(XsError::Enoent)
}

/// Look a node up for reading; a clone, since callers go on using `db`.
fn readable(db: &mut dyn Db, caller: &Caller, path: &str) -> XsResult<Node> {
    match db.get(path)? {
        Some(node) if node.perms.rights(caller).read => Ok(node.clone()),
        Some(_) => Err(XsError::Eacces),
        None => Err(missing(db, caller, path, false)?),
    }
}

/// READ: the value.
pub fn read(db: &mut dyn Db, caller: &Caller, path: &str) -> XsResult<Vec<u8>> {
    match db.get(path)? {
        Some(node) if node.perms.rights(caller).read => Ok(node.value.clone()),
        Some(_) => Err(XsError::Eacces),
        None => Err(missing(db, caller, path, false)?),
    }
}

/// GET_PERMS: the permission strings.
pub fn get_perms(db: &mut dyn Db, caller: &Caller, path: &str) -> XsResult<Vec<u8>> {
    Ok(readable(db, caller, path)?.perms.to_wire())
}

/// DIRECTORY: children leaf names, each followed by a nul; E2BIG if the
/// list does not fit one payload (clients then use DIRECTORY_PART).
pub fn directory(db: &mut dyn Db, caller: &Caller, path: &str) -> XsResult<Vec<u8>> {
    // Listed straight from the stored node: cloning it would copy every
    // child name.
    match db.get(path)? {
        Some(node) if node.perms.rights(caller).read => {
            let len = node.children_len();
            if len > PAYLOAD_MAX {
                return Err(XsError::E2big);
            }
            let mut out = Vec::with_capacity(len);
            for c in &node.children {
                out.extend_from_slice(c.as_bytes());
                out.push(0);
            }
            Ok(out)
        }
        Some(_) => Err(XsError::Eacces),
        None => Err(missing(db, caller, path, false)?),
    }
}

/// DIRECTORY_PART: `<gencnt>|` then as many children as fit from byte
/// `offset` of the full list; a final extra nul marks the list's end.
pub fn directory_part(
    db: &mut dyn Db,
    caller: &Caller,
    path: &str,
    offset: usize,
) -> XsResult<Vec<u8>> {
    let node = readable(db, caller, path)?;
    let mut out = Vec::new();
    let _ = write!(DisplayBuf(&mut out), "{}", node.generation);
    out.push(0);
    let room = PAYLOAD_MAX - out.len() - 1;
    let mut pos = 0usize;
    let mut taken = 0usize;
    let mut complete = true;
    for c in &node.children {
        let len = c.len() + 1;
        if pos >= offset {
            if taken + len > room {
                complete = false;
                break;
            }
            out.extend_from_slice(c.as_bytes());
            out.push(0);
            taken += len;
        }
        pos += len;
    }
    if complete {
        out.push(0);
    }
    Ok(out)
}

struct DisplayBuf<'a>(&'a mut Vec<u8>);

impl Write for DisplayBuf<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// WRITE (`mkdir == false`) or MKDIR: set the value, creating the node and
/// missing parents with empty values and inherited permissions. Nodes an
/// unprivileged domain creates are owned (and counted) by it.
pub fn write(
    db: &mut dyn Db,
    caller: &Caller,
    limits: Option<&Limits>,
    path: &str,
    value: &[u8],
    mkdir: bool,
) -> XsResult<Vec<Event>> {
    if !mkdir {
        if let Some(l) = limits {
            if over(l.node_size, value.len()) {
                return Err(XsError::Enospc);
            }
        }
    }
    if let Some(node) = db.get(path)? {
        if !node.perms.rights(caller).write {
            return Err(XsError::Eacces);
        }
        if mkdir {
            return Ok(Vec::new());
        }
        // The new value replaces the old one: no need to copy it first.
        let node = Node {
            value: value.to_vec(),
            perms: node.perms.clone(),
            children: node.children.clone(),
            generation: node.generation,
        };
        let perms = node.perms.clone();
        afford(db, caller, &[(path, &node)])?;
        db.put(path, node)?;
        return Ok(vec![Event::changed(path, perms)]);
    }
    // Find the nearest existing ancestor; everything below it is created.
    let mut chain: Vec<String> = vec![String::from(path)];
    let mut cur = parent(path).ok_or(XsError::Einval)?;
    let inherited = loop {
        match db.get(cur)? {
            Some(node) => {
                if !node.perms.rights(caller).write {
                    return Err(XsError::Eacces);
                }
                break node.perms.clone();
            }
            None => {
                chain.push(String::from(cur));
                cur = parent(cur).ok_or(XsError::Enoent)?;
            }
        }
    };
    if let Some(l) = limits {
        if over(l.nodes, db.owned(caller.domid) as usize + chain.len()) {
            return Err(XsError::Enospc);
        }
    }
    let mut perms = inherited;
    if !caller.privileged {
        perms.set_owner(caller.domid);
    }
    // The final form of every node the write puts: each new node linked
    // into its parent, the topmost one into the existing ancestor.
    let top = chain.last().ok_or(XsError::Einval)?;
    let mut ancestor = db.get(cur)?.cloned().ok_or(XsError::Enoent)?;
    ancestor.children.insert(String::from(basename(top)));
    let mut plan: Vec<Node> = Vec::with_capacity(chain.len());
    for (i, _) in chain.iter().enumerate() {
        let mut node = Node::new(perms.clone());
        if i == 0 && !mkdir {
            node.value = value.to_vec();
        }
        if i > 0 {
            node.children.insert(String::from(basename(&chain[i - 1])));
        }
        plan.push(node);
    }
    let mut charged: Vec<(&str, &Node)> =
        chain.iter().map(String::as_str).zip(plan.iter()).collect();
    charged.push((cur, &ancestor));
    afford(db, caller, &charged)?;
    let cur = String::from(cur);
    db.put(&cur, ancestor)?;
    for (p, node) in chain.iter().zip(plan) {
        db.put(p, node)?;
    }
    Ok(vec![Event::changed(path, perms)])
}

/// All paths of the subtree at `path` (itself first), iteratively.
pub fn subtree(db: &mut dyn Db, path: &str) -> XsResult<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![String::from(path)];
    while let Some(p) = stack.pop() {
        if let Some(node) = db.get(&p)? {
            for c in &node.children {
                stack.push(join(&p, c));
            }
            out.push(p);
        }
    }
    Ok(out)
}

/// RM: delete a node and all its children. Not an error if the node is
/// missing but its parent exists; the root cannot be removed.
pub fn rm(db: &mut dyn Db, caller: &Caller, path: &str) -> XsResult<Vec<Event>> {
    let parent_path = parent(path).ok_or(XsError::Einval)?;
    let node = match db.get(path)? {
        Some(node) => node.clone(),
        None => {
            let e = missing(db, caller, path, true)?;
            if e == XsError::Enoent && db.get(parent_path)?.is_some() {
                return Ok(Vec::new());
            }
            return Err(e);
        }
    };
    if !node.perms.rights(caller).write {
        return Err(XsError::Eacces);
    }
    // Touch everything first so a transaction cannot fail half-way.
    let doomed = subtree(db, path)?;
    let below = distinct_perms(db, &doomed)?;
    let mut parent_node = db.get(parent_path)?.cloned().ok_or(XsError::Enoent)?;
    for p in &doomed {
        db.del(p)?;
    }
    parent_node.children.remove(basename(path));
    db.put(parent_path, parent_node)?;
    Ok(vec![Event::removed(path, node.perms, below)])
}

/// Of `paths` (a subtree, its top first), those whose permissions differ
/// from their parent's, with those permissions: what watchers inside a
/// removed subtree are checked against.
pub fn distinct_perms(db: &mut dyn Db, paths: &[String]) -> XsResult<BTreeMap<String, Perms>> {
    let mut out = BTreeMap::new();
    for p in paths.iter().skip(1) {
        let Some(parent_path) = parent(p) else {
            continue;
        };
        let parent_perms = db.get(parent_path)?.map(|n| n.perms.clone());
        if let Some(node) = db.get(p)? {
            if parent_perms.as_ref() != Some(&node.perms) {
                out.insert(p.clone(), node.perms.clone());
            }
        }
    }
    Ok(out)
}

/// SET_PERMS: only the owner (or a privileged caller) may; only a
/// privileged caller may change the owner (XSA-352).
pub fn set_perms(
    db: &mut dyn Db,
    caller: &Caller,
    limits: Option<&Limits>,
    path: &str,
    perms: Perms,
) -> XsResult<Vec<Event>> {
    let node = match db.get(path)? {
        Some(node) => node.clone(),
        None => return Err(missing(db, caller, path, true)?),
    };
    if !node.perms.rights(caller).owner {
        return Err(XsError::Eacces);
    }
    if !caller.privileged && perms.owner() != node.perms.owner() {
        return Err(XsError::Eperm);
    }
    if let Some(l) = limits {
        if over(l.perms, perms.len()) {
            return Err(XsError::Enospc);
        }
    }
    let mut node = node;
    node.perms = perms.clone();
    afford(db, caller, &[(path, &node)])?;
    db.put(path, node)?;
    Ok(vec![Event::changed(path, perms)])
}
