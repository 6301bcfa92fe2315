//! dom0's operator console: serial input Xen passes to the hardware domain
//! (`VIRQ_CONSOLE`, then `CONSOLEIO_read`), echoed and assembled into lines
//! by `xcp_domains::shell`; dom0's main loop runs the commands and answers
//! with [`say`]: plain console lines, not log records.
//!
//! Xen does not echo what it hands to dom0, so dom0 does. Both go out
//! through `CONSOLEIO_write`, whose serial driver turns `\n` into `\r\n`.

use alloc::string::String;
use alloc::vec::Vec;

use xcp_domains::shell::{Line, LineBuffer};
use xcp_runtime::event_loop::Loop;

/// Bytes read from Xen per hypercall.
const READ_CHUNK: usize = 64;

/// Writes one answer line to the operator (not a log record: no stamp, no
/// domain name, and the host's log filter always shows it).
pub fn say(text: core::fmt::Arguments<'_>) {
    let mut line = alloc::format!("{text}");
    line.push('\n');
    xcp_runtime::console::write(line.as_bytes());
}

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

    /// Reads what Xen holds, echoes it; returns the lines it completes.
    pub fn read_lines(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; READ_CHUNK];
        let mut echo = Vec::new();
        // Xen buffers at most a few hundred bytes: this ends.
        loop {
            let n = xcp_runtime::console::read_input(&mut buf);
            if n == 0 {
                break;
            }
            for &byte in &buf[..n] {
                match self.lines.push(byte, &mut echo) {
                    Some(Line::Text(text)) => out.push(text),
                    Some(Line::TooLong) => {
                        // After the echo of the line it is about.
                        xcp_runtime::console::write(&echo);
                        echo.clear();
                        say(format_args!("line too long, ignored"));
                    }
                    None => {}
                }
            }
            // One write per chunk Xen hands over.
            if !echo.is_empty() {
                xcp_runtime::console::write(&echo);
                echo.clear();
            }
        }
        out
    }
}
