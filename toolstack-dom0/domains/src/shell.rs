//! dom0's operator console: Xen hands the serial input to the hardware
//! domain (`CTRL-a` three times switches it back to Xen), and dom0 reads
//! one command per line. This module is the pure half: assembling lines
//! from the bytes Xen buffers (bounded; editing with backspace) and parsing
//! them into commands.
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

use alloc::string::String;

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
}

/// A domain, as the operator names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// By domid.
    Domid(u16),
    /// By its platform.toml name.
    Name(&'a str),
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
        other => return Err(ParseError::Unknown(other)),
    };
    match words.next() {
        Some(extra) => Err(ParseError::Trailing(extra)),
        None => Ok(Some(command)),
    }
}

/// Assembles lines from console input bytes.
#[derive(Default)]
pub struct LineBuffer {
    line: String,
    /// The current line grew past [`MAX_LINE`]: drop it at its end.
    overflow: bool,
}

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

    /// Takes one input byte; returns a line when `byte` ends one (CR or LF:
    /// CR LF gives the line, then an empty one, which parses to nothing).
    /// Backspace and DEL erase; other control bytes and non-ASCII bytes
    /// are ignored.
    pub fn push(&mut self, byte: u8) -> Option<Line> {
        match byte {
            b'\r' | b'\n' => {
                let overflow = core::mem::take(&mut self.overflow);
                let line = core::mem::take(&mut self.line);
                Some(if overflow {
                    Line::TooLong
                } else {
                    Line::Text(line)
                })
            }
            0x08 | 0x7f => {
                self.line.pop();
                None
            }
            0x20..=0x7e => {
                if self.line.len() >= MAX_LINE {
                    self.overflow = true;
                    self.line.clear();
                } else if !self.overflow {
                    self.line.push(char::from(byte));
                }
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn lines(input: &[u8]) -> Vec<Line> {
        let mut b = LineBuffer::new();
        input.iter().filter_map(|&c| b.push(c)).collect()
    }

    #[test]
    fn parses_commands() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("   "), Ok(None));
        assert_eq!(parse("help"), Ok(Some(Command::Help)));
        assert_eq!(parse(" list "), Ok(Some(Command::List)));
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
        // A domid that does not fit 16 bits is a name, which matches nothing.
        assert_eq!(
            parse("crash 70000"),
            Ok(Some(Command::Crash(Target::Name("70000"))))
        );
    }

    #[test]
    fn assembles_lines_with_editing() {
        assert_eq!(
            lines(b"lisx\x7ft\r\ncrash netdom\n"),
            [
                Line::Text("list".into()),
                Line::Text(String::new()),
                Line::Text("crash netdom".into())
            ]
        );
        // Control bytes and non-ASCII are ignored.
        assert_eq!(lines(b"l\x1bi\xffst\n"), [Line::Text("list".into())]);
        // Backspace on an empty line is harmless.
        assert_eq!(lines(b"\x08\x08ls\n"), [Line::Text("ls".into())]);
    }

    #[test]
    fn overlong_lines_are_dropped_whole() {
        let mut input = Vec::new();
        input.extend(core::iter::repeat_n(b'a', MAX_LINE + 50));
        input.extend_from_slice(b"\nlist\n");
        assert_eq!(lines(&input), [Line::TooLong, Line::Text("list".into())]);
        // Exactly MAX_LINE bytes still fit.
        let mut input: Vec<u8> = core::iter::repeat_n(b'b', MAX_LINE).collect();
        input.push(b'\n');
        assert_eq!(lines(&input), [Line::Text("b".repeat(MAX_LINE))]);
    }

    #[test]
    fn never_holds_more_than_a_line_whatever_the_input() {
        // A pseudo-random byte stream: the buffer stays bounded and every
        // reported line is printable and short.
        let mut b = LineBuffer::new();
        let mut x: u32 = 12345;
        for _ in 0..100_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let byte = (x >> 16) as u8;
            if let Some(Line::Text(t)) = b.push(byte) {
                assert!(t.len() <= MAX_LINE);
                assert!(t.bytes().all(|c| (0x20..=0x7e).contains(&c)));
                let _ = parse(&t);
            }
            assert!(b.line.len() <= MAX_LINE);
        }
    }
}
