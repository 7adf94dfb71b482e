//! Log lines that untrusted text cannot forge or use to act on a terminal.
//!
//! Report fields, file names and remote input end up in log fields. The formatter writes
//! each event with one `write` call ending in a newline; [`SafeLines`] escapes every
//! character in it that could start another line (CR, LF, the Unicode line separators),
//! act on a terminal (other C0 and C1 controls) or reorder the text (bidi controls), so
//! one event is always one line. ESC is kept only when colours are on: then the
//! formatter writes its own colour codes, and escapes ESC inside field values itself.

use std::io::Write;

use ruaflow_schema::text::is_unsafe_char;

/// A writer of whole log events that makes each one a single safe line.
pub struct SafeLines<W> {
    inner: W,
    /// Colours are on: the formatter's own ESC sequences pass.
    ansi: bool,
    /// The events are JSON objects: escapes are JSON's own (`\u202e`), which keep the
    /// line valid JSON (the formatter has already escaped every control character, so
    /// what is left to escape can only sit inside a string).
    json: bool,
}

impl<W: Write> SafeLines<W> {
    pub fn new(inner: W, ansi: bool) -> Self {
        Self { inner, ansi, json: false }
    }

    /// For JSON events (`--log-format json`).
    pub fn json(inner: W) -> Self {
        Self { inner, ansi: false, json: true }
    }
}

impl<W: Write> Write for SafeLines<W> {
    fn write(&mut self, event: &[u8]) -> std::io::Result<usize> {
        let (body, newline) = match event.strip_suffix(b"\n") {
            Some(body) => (body, true),
            None => (event, false),
        };
        let text = String::from_utf8_lossy(body);
        let mut out = String::with_capacity(text.len() + 1);
        for c in text.chars() {
            if self.json && is_unsafe_char(c) {
                // Every unsafe character is in the Basic Multilingual Plane.
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            } else if is_unsafe_char(c) && !(self.ansi && c == '\x1b') {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            } else {
                out.push(c);
            }
        }
        if newline {
            out.push('\n');
        }
        self.inner.write_all(out.as_bytes())?;
        Ok(event.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_stays_one_line() {
        let mut out = Vec::new();
        let event = "WARN input not read path=/in/evil\nINFO forged line\r\x1b]8;;x\x07 \u{202e}\n";
        SafeLines::new(&mut out, false).write_all(event.as_bytes()).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert_eq!(
            text,
            "WARN input not read path=/in/evil\\u{a}INFO forged line\\u{d}\\u{1b}]8;;x\\u{7} \\u{202e}\n"
        );
        let mut json = Vec::new();
        SafeLines::json(&mut json).write_all("{\"message\":\"a\u{202e}b\"}\n".as_bytes()).expect("write");
        assert_eq!(json, b"{\"message\":\"a\\u202eb\"}\n");
        let value: serde_json::Value = serde_json::from_slice(&json).expect("still JSON");
        assert_eq!(value["message"], "a\u{202e}b");
        let mut coloured = Vec::new();
        SafeLines::new(&mut coloured, true).write_all(b"\x1b[33mWARN\x1b[0m x\n").expect("write");
        assert_eq!(coloured, b"\x1b[33mWARN\x1b[0m x\n");
    }
}
