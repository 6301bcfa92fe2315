//! What `cargo xtask run` shows a person of the platform's serial console.
//!
//! The serial line carries everything: Xen's `loglvl=all` boot chatter
//! (`(XEN) ...` lines), each domain's log records (`[  1.234567] NAME: ...`,
//! other domains' lines relayed by dom0 as `[NAME] [  1.234567] NAME: ...`,
//! DEBUG records tagged `NAME: DEBUG ...`), dom0's echo of what the operator
//! types and its answers, and QEMU's monitor when the operator switches to it.
//! All of it goes to the log file; the terminal gets everything but Xen's
//! chatter (its warnings and errors, and all of its output while serial
//! input is switched to Xen, still show) and the domains' DEBUG records.
//!
//! Lines that might be hidden (`(XEN)...` and `[...`) are held until their
//! end; any other line (an echo, a prompt, QEMU's monitor) streams at once,
//! byte by byte, so partial lines such as typing reach the terminal.

/// Longest line held back before it is shown anyway (a line that never
/// ends must not make us hold unbounded output).
pub const MAX_HELD: usize = 4096;

/// Words that make a Xen line a warning or an error a person must see.
const XEN_ALERTS: &[&str] = &[
    "WARNING",
    "Warning",
    "warning",
    "ERROR",
    "Error",
    "error",
    "PANIC",
    "Panic",
    "panic",
    "FATAL",
    "Fatal",
    "fatal",
    "BUG",
    "Assertion",
    "failed",
    "Failed",
];

/// What Xen prints when the operator switches serial input (Ctrl-A three
/// times): from then on its own output answers the operator.
const XEN_INPUT_TO_XEN: &str = "*** Serial input to Xen";
const XEN_INPUT_TO_DOM0: &str = "*** Serial input to DOM0";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a line.
    Start,
    /// Showing this line as it comes.
    Streaming,
    /// Holding this line until it ends.
    Holding,
}

/// The serial-console filter: bytes in, the bytes to show out.
#[derive(Debug)]
pub struct Filter {
    verbose: bool,
    state: State,
    held: Vec<u8>,
    /// Serial input goes to Xen (its debug keys answer the operator).
    xen_input: bool,
}

impl Filter {
    /// A filter; `verbose` shows everything.
    pub fn new(verbose: bool) -> Filter {
        Filter {
            verbose,
            state: State::Start,
            held: Vec::new(),
            xen_input: false,
        }
    }

    /// Takes serial output; appends what the terminal shows to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.verbose {
            out.extend_from_slice(bytes);
            return;
        }
        for &b in bytes {
            match self.state {
                State::Start if b == b'(' || b == b'[' => {
                    self.held.push(b);
                    self.state = State::Holding;
                }
                State::Start | State::Streaming => {
                    out.push(b);
                    self.state = if b == b'\n' {
                        State::Start
                    } else {
                        State::Streaming
                    };
                }
                State::Holding => {
                    self.held.push(b);
                    if b == b'\n' {
                        if self.shows(&self.held.clone()) {
                            out.append(&mut self.held);
                        }
                        self.held.clear();
                        self.state = State::Start;
                    } else if self.held.len() >= MAX_HELD || cannot_be_xen(&self.held) {
                        out.append(&mut self.held);
                        self.state = State::Streaming;
                    }
                }
            }
        }
    }

    /// The output ended: shows a held partial line.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.held);
        self.state = State::Start;
    }

    /// Whether a whole held line is shown (and notes input switches).
    fn shows(&mut self, line: &[u8]) -> bool {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\r', '\n']);
        if let Some(xen) = text.strip_prefix("(XEN)") {
            if xen.contains(XEN_INPUT_TO_XEN) {
                self.xen_input = true;
                return true;
            }
            if xen.contains(XEN_INPUT_TO_DOM0) {
                self.xen_input = false;
                return true;
            }
            return self.xen_input || XEN_ALERTS.iter().any(|w| xen.contains(w));
        }
        !is_debug_record(text)
    }
}

/// A held line that starts `(` but not `(XEN)` (QEMU's `(qemu)` prompt,
/// or typing) is shown at once.
fn cannot_be_xen(held: &[u8]) -> bool {
    const XEN: &[u8] = b"(XEN)";
    held[0] == b'(' && !held.starts_with(XEN) && !XEN.starts_with(held)
}

/// `[  1.234567] NAME: DEBUG ...`, possibly relayed as `[NAME] ` + that.
pub fn is_debug_record(line: &str) -> bool {
    let line = match relay_prefix(line) {
        Some(rest) => rest,
        None => line,
    };
    let Some(rest) = line.strip_prefix('[') else {
        return false;
    };
    let Some((stamp, rest)) = rest.split_once("] ") else {
        return false;
    };
    if stamp.trim().is_empty()
        || !stamp
            .trim()
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.')
    {
        return false;
    }
    let Some((name, message)) = rest.split_once(": ") else {
        return false;
    };
    !name.is_empty() && !name.contains(' ') && message.starts_with("DEBUG ")
}

/// The rest of a line dom0 relayed from a domain (`[NAME] ...`).
fn relay_prefix(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('[')?;
    let (name, rest) = rest.split_once("] ")?;
    let is_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    (is_name && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(filter: &mut Filter, input: &[u8]) -> String {
        let mut out = Vec::new();
        filter.feed(input, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn xen_chatter_and_debug_records_are_hidden_the_rest_shown() {
        let mut f = Filter::new(false);
        let input = "(XEN) [    0.976031] *** Building a PV Dom0 ***\r\n\
                     (XEN) [    1.194454] *** Serial input to DOM0 (type 'CTRL-a' three times to switch input)\r\n\
                     [    1.247205] dom0: xcp-rs toolstack-dom0 0.1.0 on Xen 4.17.7\r\n\
                     [    1.269672] dom0: DEBUG pci 0000:00:00.0 8086:29c0 bridge\r\n\
                     [xenstore] [    1.392851] xenstore-dom: DEBUG 8192 pages\r\n\
                     [netdom] [    1.564407] netdom: DHCP lease 10.0.2.15/24\r\n\
                     [    1.567453] dom0: WARN something odd\r\n\
                     [    1.567453] dom0: XenAPI ready at http://127.0.0.1:8080/\r\n";
        let out = shown(&mut f, input.as_bytes());
        assert_eq!(
            out,
            "(XEN) [    1.194454] *** Serial input to DOM0 (type 'CTRL-a' three times to switch input)\r\n\
             [    1.247205] dom0: xcp-rs toolstack-dom0 0.1.0 on Xen 4.17.7\r\n\
             [netdom] [    1.564407] netdom: DHCP lease 10.0.2.15/24\r\n\
             [    1.567453] dom0: WARN something odd\r\n\
             [    1.567453] dom0: XenAPI ready at http://127.0.0.1:8080/\r\n"
        );
    }

    #[test]
    fn xen_warnings_and_errors_show() {
        let mut f = Filter::new(false);
        let out = shown(
            &mut f,
            b"(XEN) [    1.0] WARNING: something\r\n(XEN) [    1.1] Panic on CPU 0:\r\n(XEN) [    1.2] quiet\r\n",
        );
        assert_eq!(
            out,
            "(XEN) [    1.0] WARNING: something\r\n(XEN) [    1.1] Panic on CPU 0:\r\n"
        );
    }

    #[test]
    fn while_input_goes_to_xen_all_its_output_shows() {
        let mut f = Filter::new(false);
        let out = shown(
            &mut f,
            b"(XEN) [  9.0] *** Serial input to Xen (type 'CTRL-a' three times to switch input)\r\n\
              (XEN) [  9.1] 'h' pressed -> showing installed handlers\r\n\
              (XEN) [  9.2] *** Serial input to DOM0 (type 'CTRL-a' three times to switch input)\r\n\
              (XEN) [  9.3] hidden again\r\n",
        );
        assert!(out.contains("'h' pressed"), "{out}");
        assert!(out.contains("Serial input to DOM0"), "{out}");
        assert!(!out.contains("hidden again"), "{out}");
    }

    #[test]
    fn typing_echo_and_prompts_stream_before_their_line_ends() {
        let mut f = Filter::new(false);
        assert_eq!(shown(&mut f, b"he"), "he");
        assert_eq!(shown(&mut f, b"lp\r\n"), "lp\r\n");
        // QEMU's monitor prompt: shown once it cannot be a Xen line.
        assert_eq!(shown(&mut f, b"(q"), "(q");
        assert_eq!(shown(&mut f, b"emu) "), "emu) ");
        // A Xen line split across reads is held until its end.
        assert_eq!(shown(&mut f, b"\n(XE"), "\n");
        assert_eq!(shown(&mut f, b"N) quiet\r\n"), "");
    }

    #[test]
    fn a_line_starting_with_a_bracket_that_is_not_a_record_shows() {
        let mut f = Filter::new(false);
        assert_eq!(shown(&mut f, b"[typed"), "");
        assert_eq!(shown(&mut f, b"]\r\n"), "[typed]\r\n");
        assert_eq!(
            shown(&mut f, b"[netdom] console ring overrun: output lost\r\n"),
            "[netdom] console ring overrun: output lost\r\n"
        );
    }

    #[test]
    fn held_lines_are_bounded_and_flushed_at_the_end() {
        let mut f = Filter::new(false);
        let long = vec![b'['; MAX_HELD + 10];
        let out = shown(&mut f, &long);
        assert_eq!(out.len(), MAX_HELD + 10);
        let mut f = Filter::new(false);
        assert_eq!(shown(&mut f, b"[    1.0] dom0: DEBUG partial"), "");
        let mut out = Vec::new();
        f.finish(&mut out);
        assert_eq!(out, b"[    1.0] dom0: DEBUG partial");
    }

    #[test]
    fn verbose_shows_everything() {
        let mut f = Filter::new(true);
        let input = b"(XEN) [ 1.0] chatter\r\n[    1.0] dom0: DEBUG x\r\n";
        assert_eq!(shown(&mut f, input).as_bytes(), input);
    }

    #[test]
    fn debug_records_are_recognised_only_in_their_own_form() {
        assert!(is_debug_record("[    1.269672] dom0: DEBUG pci"));
        assert!(is_debug_record("[netdom] [    1.5] netdom: DEBUG MAC"));
        assert!(!is_debug_record("[    1.5] dom0: built netdom"));
        assert!(!is_debug_record("[    1.5] dom0: WARN DEBUG"));
        assert!(!is_debug_record("[abc] dom0: DEBUG x"));
        assert!(!is_debug_record("[netdom] DEBUG x"));
        assert!(!is_debug_record("DEBUG x"));
    }
}
