//! dom0's operator console: serial input Xen passes to the hardware domain
//! (`VIRQ_CONSOLE`, then `CONSOLEIO_read`), assembled into lines and parsed
//! by `xcp_domains::shell`; dom0's main loop runs the commands.

use alloc::string::String;
use alloc::vec::Vec;

use log::warn;
use xcp_domains::shell::{Line, LineBuffer};
use xcp_runtime::event_loop::Loop;

/// Bytes read from Xen per hypercall.
const READ_CHUNK: usize = 64;

/// The console's input side.
pub struct Shell {
    /// The port bound to `VIRQ_CONSOLE`.
    pub port: u32,
    lines: LineBuffer,
}

impl Shell {
    /// Binds `VIRQ_CONSOLE` and watches it.
    pub fn bind(lp: &mut Loop) -> Result<Self, xen_sys::Errno> {
        let port = xcp_runtime::evtchn::bind_virq(xen_sys::event_channel::VIRQ_CONSOLE)?;
        lp.watch(port)?;
        Ok(Shell {
            port,
            lines: LineBuffer::new(),
        })
    }

    /// Reads what Xen holds; returns the lines it completes.
    pub fn read_lines(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; READ_CHUNK];
        // Xen buffers at most a few hundred bytes: this ends.
        loop {
            let n = xcp_runtime::console::read_input(&mut buf);
            if n == 0 {
                break;
            }
            for &byte in &buf[..n] {
                match self.lines.push(byte) {
                    Some(Line::Text(text)) => out.push(text),
                    Some(Line::TooLong) => warn!("console: line too long, ignored"),
                    None => {}
                }
            }
        }
        out
    }
}
