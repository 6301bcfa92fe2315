//! `console-echo` (test image only): echoes what arrives on the PV
//! console's input ring back on its output, a line at a time prefixed
//! `echo: `, so a test can type into a XenAPI VM's text console and see
//! the guest answer.

use alloc::vec::Vec;

/// Longest line kept before it is echoed anyway.
const MAX_LINE: usize = 256;

/// Echoes console input for ever.
pub fn run() -> ! {
    log::info!("console-echo: type a line");
    let mut line: Vec<u8> = Vec::new();
    let mut buf = [0u8; 128];
    loop {
        let n = xcp_runtime::console::read_ring_input(&mut buf);
        if n == 0 {
            match xcp_runtime::console::ring_port() {
                // Wake at the next kick, or after a second regardless.
                Some(port) => {
                    let deadline = xcp_runtime::time::now_ns() + 1_000_000_000;
                    xcp_runtime::event_loop::poll_one(port, deadline);
                }
                None => xcp_runtime::event_loop::idle(),
            }
            continue;
        }
        for &b in &buf[..n] {
            if b == b'\r' || b == b'\n' || line.len() >= MAX_LINE {
                if !line.is_empty() {
                    let mut out = Vec::with_capacity(line.len() + 8);
                    out.extend_from_slice(b"echo: ");
                    out.extend_from_slice(&line);
                    out.push(b'\n');
                    xcp_runtime::console::write(&out);
                    line.clear();
                }
                if b == b'\r' || b == b'\n' {
                    continue;
                }
            }
            line.push(b);
        }
    }
}
