//! `log` backend: one line per record, `[  secs.micros] name: message`, with
//! Xen system time so lines line up with Xen's own `console_timestamps=boot`.
//! Which records print, and the level tag after `name: ` (`ERROR `, `WARN `,
//! `DEBUG `, none for info), is [`crate::log_policy`].

use core::fmt::Write;

struct Logger;

static LOGGER: Logger = Logger;
static NAME: spin::Once<&'static str> = spin::Once::new();

/// Installs the logger with the domain's `name`; called once at boot.
pub(crate) fn init(name: &'static str) {
    NAME.call_once(|| name);
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(crate::log_policy::MAX_LEVEL);
}

/// Line buffer so one record reaches the console in one write.
struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buf.len() - self.len;
        let n = room.min(s.len());
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        crate::log_policy::tag(metadata.level(), metadata.target()).is_some()
    }

    fn log(&self, record: &log::Record) {
        let Some(level) = crate::log_policy::tag(record.level(), record.target()) else {
            return;
        };
        let mut line = Line {
            buf: [0; 512],
            len: 0,
        };
        let name = NAME.get().copied().unwrap_or("xcp");
        let _ = write!(
            line,
            "[{}] {}: {}{}",
            crate::time::Stamp(crate::time::now_ns()),
            name,
            level,
            record.args()
        );
        // Keep the newline even when the message was cut.
        line.len = line.len.min(line.buf.len() - 1);
        line.buf[line.len] = b'\n';
        crate::console::write(&line.buf[..=line.len]);
    }

    fn flush(&self) {}
}
