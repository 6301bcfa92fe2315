//! xs_wire for the client side: the 16-byte header, message types, encoding.
//!
//! Read first: xs_wire.h (`struct xsd_sockmsg`, `enum xsd_sockmsg_type`),
//! docs/misc/xenstore.txt. Every message either way is `{type, req_id,
//! tx_id, len}` as little-endian u32s, then `len` payload bytes with
//! `len <= XENSTORE_PAYLOAD_MAX` (4096). A reply with a longer `len` is a
//! broken server: the client stops reading instead of buffering it.
//!
//! The header, message types and the stream parser ([`parse`]) come from
//! `xcp-xs-wire`, shared with the engine; encoding for the client side
//! lives here.

use alloc::vec::Vec;

pub use xcp_xs_wire::{parse, BadReason, Header, MsgType, Parse, HEADER_LEN};
pub use xcp_xs_wire::{
    ABS_PATH_MAX as XENSTORE_ABS_PATH_MAX, PAYLOAD_MAX as XENSTORE_PAYLOAD_MAX,
    REL_PATH_MAX as XENSTORE_REL_PATH_MAX,
};

/// Build a whole message. `None` if the payload exceeds
/// XENSTORE_PAYLOAD_MAX (the server would drop our connection).
pub fn encode(ty: MsgType, req_id: u32, tx_id: u32, payload: &[u8]) -> Option<Vec<u8>> {
    if payload.len() > XENSTORE_PAYLOAD_MAX {
        return None;
    }
    let header = Header {
        ty,
        req_id,
        tx_id,
        len: u32::try_from(payload.len()).ok()?,
    };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&header.emit());
    out.extend_from_slice(payload);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_refuses_oversize_payloads() {
        assert!(encode(MsgType::Write, 1, 0, &[b'x'; 4097]).is_none());
        let m = encode(MsgType::Write, 1, 2, &[b'x'; 4096]).expect("fits");
        assert_eq!(m.len(), 16 + 4096);
        assert_eq!(
            Header::parse(&m).map(|h| (h.req_id, h.tx_id, h.len)),
            Some((1, 2, 4096))
        );
    }
}
