//! The command line dom0 gives xenstore-dom (see DESIGN.md "The domain").
//!
//! `dom0-ring=<gref>,<port>`: the grant reference of dom0's own xenstore
//! ring page (granted by dom0 to us) and dom0's unbound event-channel port
//! for it (allocated by dom0 with us as the remote). `xs-domid=<domid>`
//! (optional): our own domid, made privileged in the engine like dom0.
//! `max-guests=<n>` (optional): at most this many introduced guests.

/// Why the command line is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgError {
    /// `dom0-ring` is missing.
    MissingDom0Ring,
    /// `dom0-ring` is not `<gref>,<port>` in decimal.
    BadDom0Ring,
    /// `xs-domid` is not a decimal domid below DOMID_FIRST_RESERVED.
    BadDomid,
    /// `max-guests` is not a decimal number.
    BadMaxGuests,
}

/// dom0's ring: grant reference and event-channel port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dom0Ring {
    /// Grant reference of dom0's ring page, granted to us.
    pub gref: u32,
    /// dom0's unbound port for us.
    pub port: u32,
}

fn decimal<T: core::str::FromStr>(s: &str) -> Option<T> {
    // `FromStr` accepts a leading '+'; a command line must be plain digits.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parse the value of `dom0-ring=` (`None` if the key was absent).
pub fn dom0_ring(value: Option<&str>) -> Result<Dom0Ring, ArgError> {
    let value = value.ok_or(ArgError::MissingDom0Ring)?;
    let (gref, port) = value.split_once(',').ok_or(ArgError::BadDom0Ring)?;
    Ok(Dom0Ring {
        gref: decimal(gref).ok_or(ArgError::BadDom0Ring)?,
        port: decimal(port).ok_or(ArgError::BadDom0Ring)?,
    })
}

/// Parse the value of `xs-domid=` (absent: `None`).
pub fn xs_domid(value: Option<&str>) -> Result<Option<u16>, ArgError> {
    match value {
        None => Ok(None),
        Some(v) => match decimal::<u16>(v) {
            Some(d) if d < 0x7ff0 => Ok(Some(d)),
            _ => Err(ArgError::BadDomid),
        },
    }
}

/// Parse the value of `max-guests=` (absent: `default`).
pub fn max_guests(value: Option<&str>, default: usize) -> Result<usize, ArgError> {
    match value {
        None => Ok(default),
        Some(v) => decimal(v).ok_or(ArgError::BadMaxGuests),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dom0_ring_values() {
        assert_eq!(dom0_ring(Some("8,3")), Ok(Dom0Ring { gref: 8, port: 3 }));
        assert_eq!(dom0_ring(None), Err(ArgError::MissingDom0Ring));
        for bad in [
            "",
            "8",
            "8,",
            ",3",
            "8,3,4",
            "+8,3",
            "x,3",
            "8,-3",
            "4294967296,1",
        ] {
            assert_eq!(dom0_ring(Some(bad)), Err(ArgError::BadDom0Ring), "{bad}");
        }
    }

    #[test]
    fn domids_and_limits() {
        assert_eq!(xs_domid(None), Ok(None));
        assert_eq!(xs_domid(Some("1")), Ok(Some(1)));
        assert_eq!(xs_domid(Some("32752")), Err(ArgError::BadDomid));
        assert_eq!(xs_domid(Some("")), Err(ArgError::BadDomid));
        assert_eq!(max_guests(None, 127), Ok(127));
        assert_eq!(max_guests(Some("5"), 127), Ok(5));
        assert_eq!(max_guests(Some("five"), 127), Err(ArgError::BadMaxGuests));
    }
}
