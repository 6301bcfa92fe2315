//! dom0's operator console: Xen hands the serial input to the hardware
//! domain (`CTRL-a` three times switches it back to Xen), and dom0 reads
//! one command per line. This module is the pure half: assembling lines
//! from the bytes Xen buffers (bounded; editing with backspace), deciding
//! what dom0 echoes (Xen does not echo what it hands over), and parsing
//! lines into commands. dom0 writes the answers as plain console lines,
//! not log records.
//!
//! Commands (service domains are named by their platform.toml name or by
//! domid):
//! - `help`: the list below.
//! - `list`: the managed domains, their domids and restart counts.
//! - `crash NAME`: shut the domain down as a crash does
//!   (`SCHEDOP_remote_shutdown`, `SHUTDOWN_crash`); the restart policy then
//!   applies, as for a real crash.
//! - `destroy NAME`: stop managing the domain and destroy it (`xl destroy`);
//!   it is not restarted.
//! - `stats`: ask each relay domain (netdom) for its counters over its relay
//!   channel (`xcp_relay::FromToolstack::StatsRequest`): NIC interrupt and
//!   timer wake-ups, relayed connections. They answer when they next run.
//! - `mem`: each domain's configured memory, Xen's count of its pages, and
//!   its heap and frames in use and at most (`crate::memory`): dom0's own,
//!   the xenstore domain's from its xenstore home (`data/memory/`), a relay
//!   domain's in its counters' answer (when it next runs).

use alloc::string::String;
use alloc::vec::Vec;

/// Longest command line kept; longer lines are dropped whole.
pub const MAX_LINE: usize = 128;

/// What the operator can type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `help`
    Help,
    /// `list`
    List,
    /// `crash NAME`
    Crash(Target<'a>),
    /// `destroy NAME`
    Destroy(Target<'a>),
    /// `stats`
    Stats,
    /// `mem`
    Mem,
}

/// A domain, as the operator names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// By domid.
    Domid(u16),
    /// By its platform.toml name.
    Name(&'a str),
}

impl core::fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Target::Domid(domid) => write!(f, "domid {domid}"),
            Target::Name(name) => write!(f, "{name:?}"),
        }
    }
}

/// Why a line is not a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError<'a> {
    /// The first word is not a command.
    Unknown(&'a str),
    /// The command needs a domain name or domid.
    MissingTarget(&'static str),
    /// Words after the command's arguments.
    Trailing(&'a str),
}

impl core::fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ParseError::Unknown(w) => write!(f, "unknown command {w:?} (try help)"),
            ParseError::MissingTarget(c) => write!(f, "{c} needs a domain name or domid"),
            ParseError::Trailing(w) => write!(f, "unexpected {w:?}"),
        }
    }
}

/// The help text, one command per line.
pub const HELP: &[&str] = &[
    "help            this list",
    "list            managed service domains",
    "crash NAME      shut NAME down as a crash would (restart policy applies)",
    "destroy NAME    destroy NAME and stop managing it",
    "stats           counters of the network domain (interrupts, connections)",
    "mem             memory of each domain: configured, Xen pages, heap, frames",
];

fn target(word: &str) -> Target<'_> {
    match word.parse::<u16>() {
        Ok(domid) => Target::Domid(domid),
        Err(_) => Target::Name(word),
    }
}

/// Parses one line; `Ok(None)` for a blank one.
pub fn parse(line: &str) -> Result<Option<Command<'_>>, ParseError<'_>> {
    let mut words = line.split_ascii_whitespace();
    let Some(first) = words.next() else {
        return Ok(None);
    };
    let command = match first {
        "help" | "?" => Command::Help,
        "list" | "ls" => Command::List,
        "crash" => Command::Crash(target(
            words.next().ok_or(ParseError::MissingTarget("crash"))?,
        )),
        "destroy" => Command::Destroy(target(
            words.next().ok_or(ParseError::MissingTarget("destroy"))?,
        )),
        "stats" => Command::Stats,
        "mem" => Command::Mem,
        other => return Err(ParseError::Unknown(other)),
    };
    match words.next() {
        Some(extra) => Err(ParseError::Trailing(extra)),
        None => Ok(Some(command)),
    }
}

/// Assembles lines from console input bytes and says what to echo.
#[derive(Default)]
pub struct LineBuffer {
    /// The line's first [`MAX_LINE`] bytes.
    line: String,
    /// Bytes typed (and echoed) past [`MAX_LINE`]: the line is dropped at
    /// its end unless they are erased first. A count, so nothing grows.
    extra: usize,
    /// The last byte was a CR: an LF right after it ends nothing.
    after_cr: bool,
}

/// What dom0 echoes for an erased character: back, blank it, back.
pub const ERASE: &[u8] = b"\x08 \x08";

/// One finished line.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line, without its terminator.
    Text(String),
    /// A line longer than [`MAX_LINE`], dropped.
    TooLong,
}

impl LineBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one input byte, appending what dom0 should echo for it to
    /// `echo`; returns a line when `byte` ends one.
    ///
    /// - CR or LF ends the line and echoes `\n` (a CR LF pair ends one
    ///   line, not two).
    /// - Backspace and DEL erase the last character and echo [`ERASE`],
    ///   only when there is one to erase.
    /// - Printable ASCII is kept and echoed as typed (past [`MAX_LINE`] it
    ///   is only counted: the line is dropped as [`Line::TooLong`]).
    /// - Other control bytes and non-ASCII bytes are ignored, unechoed.
    pub fn push(&mut self, byte: u8, echo: &mut Vec<u8>) -> Option<Line> {
        let after_cr = core::mem::take(&mut self.after_cr);
        match byte {
            b'\n' if after_cr => None,
            b'\r' | b'\n' => {
                self.after_cr = byte == b'\r';
                echo.push(b'\n');
                let extra = core::mem::take(&mut self.extra);
                let line = core::mem::take(&mut self.line);
                Some(if extra > 0 {
                    Line::TooLong
                } else {
                    Line::Text(line)
                })
            }
            0x08 | 0x7f => {
                if self.extra > 0 {
                    self.extra -= 1;
                    echo.extend_from_slice(ERASE);
                } else if self.line.pop().is_some() {
                    echo.extend_from_slice(ERASE);
                }
                None
            }
            0x20..=0x7e => {
                if self.line.len() < MAX_LINE {
                    self.line.push(char::from(byte));
                } else {
                    self.extra = self.extra.saturating_add(1);
                }
                echo.push(byte);
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<Line> {
        typed(input).0
    }

    /// The lines `input` completes and what dom0 echoes for it.
    fn typed(input: &[u8]) -> (Vec<Line>, Vec<u8>) {
        let mut b = LineBuffer::new();
        let mut echo = Vec::new();
        let lines = input.iter().filter_map(|&c| b.push(c, &mut echo)).collect();
        (lines, echo)
    }

    #[test]
    fn parses_commands() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("   "), Ok(None));
        assert_eq!(parse("help"), Ok(Some(Command::Help)));
        assert_eq!(parse(" list "), Ok(Some(Command::List)));
        assert_eq!(parse("stats"), Ok(Some(Command::Stats)));
        assert_eq!(parse(" mem"), Ok(Some(Command::Mem)));
        assert_eq!(parse("mem all"), Err(ParseError::Trailing("all")));
        assert_eq!(
            parse("crash netdom"),
            Ok(Some(Command::Crash(Target::Name("netdom"))))
        );
        assert_eq!(
            parse("destroy 3"),
            Ok(Some(Command::Destroy(Target::Domid(3))))
        );
        assert_eq!(parse("reboot"), Err(ParseError::Unknown("reboot")));
        assert_eq!(parse("crash"), Err(ParseError::MissingTarget("crash")));
        assert_eq!(parse("destroy a b"), Err(ParseError::Trailing("b")));
        assert_eq!(parse("stats now"), Err(ParseError::Trailing("now")));
        // A domid that does not fit 16 bits is a name, which matches nothing.
        assert_eq!(
            parse("crash 70000"),
            Ok(Some(Command::Crash(Target::Name("70000"))))
        );
    }

    #[test]
    fn targets_read_as_the_operator_typed_them() {
        assert_eq!(alloc::format!("{}", Target::Domid(3)), "domid 3");
        assert_eq!(alloc::format!("{}", Target::Name("netdom")), "\"netdom\"");
    }

    #[test]
    fn help_lists_every_command() {
        for word in ["help", "list", "crash", "destroy", "stats", "mem"] {
            assert!(
                HELP.iter().any(|l| l.starts_with(word)),
                "{word} is not in HELP"
            );
        }
    }

    #[test]
    fn assembles_lines_with_editing() {
        assert_eq!(
            lines(b"lisx\x7ft\r\ncrash netdom\n"),
            [Line::Text("list".into()), Line::Text("crash netdom".into())]
        );
        // Control bytes and non-ASCII are ignored.
        assert_eq!(lines(b"l\x1bi\xffst\n"), [Line::Text("list".into())]);
        // Backspace on an empty line is harmless.
        assert_eq!(lines(b"\x08\x08ls\n"), [Line::Text("ls".into())]);
        // CR CR is two lines, LF CR too; only CR LF is one.
        assert_eq!(
            lines(b"a\r\rb\n\rc\r\n"),
            [
                Line::Text("a".into()),
                Line::Text(String::new()),
                Line::Text("b".into()),
                Line::Text(String::new()),
                Line::Text("c".into())
            ]
        );
        // An LF after a CR that something else followed is a line end.
        assert_eq!(
            lines(b"\rx\nls\n"),
            [
                Line::Text(String::new()),
                Line::Text("x".into()),
                Line::Text("ls".into())
            ]
        );
    }

    #[test]
    fn echoes_what_the_operator_sees() {
        // Printable bytes as typed, Enter as a newline.
        assert_eq!(typed(b"list\r").1, b"list\n");
        // CR LF echoes one newline.
        assert_eq!(typed(b"ls\r\n").1, b"ls\n");
        assert_eq!(typed(b"ls\n").1, b"ls\n");
        // An empty line still moves to a new one.
        assert_eq!(typed(b"\r").1, b"\n");
        // Erase only what is there.
        assert_eq!(typed(b"lx\x7f\x08\x08").1, b"lx\x08 \x08\x08 \x08");
        assert_eq!(typed(b"\x08\x7f").1, b"");
        // Ignored bytes echo nothing.
        assert_eq!(typed(b"\x1b\x01\xff\t").1, b"");
    }

    #[test]
    fn overlong_lines_are_dropped_whole() {
        let mut input = Vec::new();
        input.extend(core::iter::repeat_n(b'a', MAX_LINE + 50));
        input.extend_from_slice(b"\nlist\n");
        let (got, echo) = typed(&input);
        assert_eq!(got, [Line::TooLong, Line::Text("list".into())]);
        // Everything typed was echoed.
        assert_eq!(echo.len(), MAX_LINE + 50 + 1 + 5);
        // Exactly MAX_LINE bytes still fit.
        let mut input: Vec<u8> = core::iter::repeat_n(b'b', MAX_LINE).collect();
        input.push(b'\n');
        assert_eq!(lines(&input), [Line::Text("b".repeat(MAX_LINE))]);
        // Erasing back under the limit keeps the line, as the operator
        // sees it.
        let mut input: Vec<u8> = core::iter::repeat_n(b'c', MAX_LINE + 2).collect();
        input.extend_from_slice(b"\x7f\x7f\x7f\n");
        let (got, echo) = typed(&input);
        assert_eq!(got, [Line::Text("c".repeat(MAX_LINE - 1))]);
        assert!(echo.ends_with(b"\x08 \x08\x08 \x08\x08 \x08\n"));
    }

    #[test]
    fn never_holds_more_than_a_line_whatever_the_input() {
        // A pseudo-random byte stream: the buffer stays bounded, every
        // reported line is printable and short, and the echo of one byte
        // is at most an erase.
        let mut b = LineBuffer::new();
        let mut x: u32 = 12345;
        for _ in 0..100_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let byte = (x >> 16) as u8;
            let mut echo = Vec::new();
            if let Some(Line::Text(t)) = b.push(byte, &mut echo) {
                assert!(t.len() <= MAX_LINE);
                assert!(t.bytes().all(|c| (0x20..=0x7e).contains(&c)));
                let _ = parse(&t);
            }
            assert!(echo.len() <= ERASE.len());
            assert!(b.line.len() <= MAX_LINE);
        }
    }
}
