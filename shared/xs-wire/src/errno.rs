//! xenstore errors: Xen's errno names, one enum both ends share.
//!
//! Read first: xs_wire.h `xsd_errors`. A failed request is answered with an
//! XS_ERROR message whose payload is the errno *name* ("ENOENT\0"), not a
//! number. [`Errno`] maps those names 1:1; what each side adds is its own
//! (the engine answers these, the client also meets names it does not know).

use xen_abi::io::xs_wire::XSD_ERRORS;

/// An errno name that goes on the wire in an XS_ERROR reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Errno {
    /// EINVAL: invalid argument (bad path, bad payload, bad domid...).
    Einval,
    /// EACCES: permission denied.
    Eacces,
    /// EEXIST: node already exists.
    Eexist,
    /// EISDIR: is a directory.
    Eisdir,
    /// ENOENT: no such node, transaction or domain.
    Enoent,
    /// ENOMEM: out of memory.
    Enomem,
    /// ENOSPC: a per-domain quota (nodes, value size, transactions, perms)
    /// is exhausted.
    Enospc,
    /// EIO: I/O error.
    Eio,
    /// ENOTEMPTY: directory not empty.
    Enotempty,
    /// ENOSYS: the server does not implement the message type.
    Enosys,
    /// EROFS: read-only.
    Erofs,
    /// EBUSY: busy (e.g. INTRODUCE of a domid already introduced with
    /// another ring).
    Ebusy,
    /// EAGAIN: a transaction conflicted; retry it.
    Eagain,
    /// EISCONN: already connected.
    Eisconn,
    /// E2BIG: too big (reply too large, too many watches).
    E2big,
    /// EPERM: operation not permitted (e.g. a guest changing a node's
    /// owner).
    Eperm,
    /// EQUOTA: quota exceeded (oxenstored's name; C xenstored answers
    /// ENOSPC/E2BIG).
    Equota,
}

// The variants before EQUOTA are `xsd_errors[]`, in its order.
const _: () = assert!(Errno::Eperm as usize == XSD_ERRORS.len() - 1);
const _: () = assert!(Errno::Equota as usize == XSD_ERRORS.len());

impl Errno {
    /// Every variant, in xs_wire.h order (EQUOTA, oxenstored's, last).
    pub const ALL: [Errno; 17] = [
        Errno::Einval,
        Errno::Eacces,
        Errno::Eexist,
        Errno::Eisdir,
        Errno::Enoent,
        Errno::Enomem,
        Errno::Enospc,
        Errno::Eio,
        Errno::Enotempty,
        Errno::Enosys,
        Errno::Erofs,
        Errno::Ebusy,
        Errno::Eagain,
        Errno::Eisconn,
        Errno::E2big,
        Errno::Eperm,
        Errno::Equota,
    ];

    /// The errno name sent on the wire, without the trailing nul: xs_wire.h's
    /// `xsd_errors[]` (from xen-abi; the variants are in its order), and
    /// oxenstored's EQUOTA after it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Errno::Equota => "EQUOTA",
            e => XSD_ERRORS[e as usize],
        }
    }

    /// The errno with exactly this name, `None` if unknown.
    pub fn from_name(name: impl AsRef<[u8]>) -> Option<Errno> {
        let name = name.as_ref();
        Errno::ALL
            .iter()
            .copied()
            .find(|e| e.as_str().as_bytes() == name)
    }

    /// Decode an XS_ERROR payload: the name up to the first nul (or the
    /// whole payload if there is none); `None` if that name is unknown.
    pub fn from_payload(payload: &[u8]) -> Option<Errno> {
        let name = payload.split(|b| *b == 0).next().unwrap_or(&[]);
        Errno::from_name(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for e in Errno::ALL {
            assert_eq!(Errno::from_name(e.as_str()), Some(e));
            assert!(e.as_str().starts_with('E'));
        }
        assert_eq!(Errno::from_name("EWHAT"), None);
    }

    #[test]
    fn xs_wire_names() {
        // The first entries of xs_wire.h's xsd_errors table.
        assert_eq!(Errno::Einval.as_str(), "EINVAL");
        assert_eq!(Errno::Eagain.as_str(), "EAGAIN");
        assert_eq!(Errno::E2big.as_str(), "E2BIG");
        for (i, name) in XSD_ERRORS.iter().enumerate() {
            assert_eq!(Errno::ALL[i].as_str(), *name);
        }
    }

    #[test]
    fn payloads_round_trip() {
        for e in Errno::ALL {
            let mut payload = alloc::vec::Vec::from(e.as_str().as_bytes());
            payload.push(0);
            assert_eq!(Errno::from_payload(&payload), Some(e));
            assert_eq!(Errno::from_payload(e.as_str().as_bytes()), Some(e));
        }
    }

    #[test]
    fn unknown_and_hostile_payloads() {
        assert_eq!(Errno::from_payload(b""), None);
        assert_eq!(Errno::from_payload(b"EWHAT\0"), None);
        assert_eq!(Errno::from_payload(b"ENOENTX\0"), None);
        assert_eq!(Errno::from_payload(b"\0ENOENT\0"), None);
        assert_eq!(Errno::from_payload(b"EAGAIN\0junk"), Some(Errno::Eagain));
    }
}
