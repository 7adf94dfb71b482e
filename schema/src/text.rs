//! Turning untrusted bytes into text.
//!
//! Input: the raw bytes of one field; output: a `String`. Real receivers send UTF-8,
//! windows-1252 (declared or not) and plain invalid UTF-8 (parsedmarc's `invalid_utf_8.xml`
//! sample): valid UTF-8 is taken as is, anything else is read as windows-1252, which maps
//! every byte to a character, so no input is ever refused for its encoding.

/// The characters windows-1252 puts at 0x80..=0x9F (where ISO-8859-1 has C1 controls).
/// The five bytes windows-1252 leaves undefined map to U+FFFD.
const CP1252_HIGH: [char; 32] = [
    '€', '\u{FFFD}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{FFFD}', 'Ž', '\u{FFFD}',
    '\u{FFFD}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{FFFD}', 'ž', 'Ÿ',
];

/// Decodes windows-1252 (a superset of ISO-8859-1 for printable text).
pub fn decode_cp1252(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            0x80..=0x9F => CP1252_HIGH[usize::from(b - 0x80)],
            _ => char::from(b),
        })
        .collect()
}

/// Decodes a field: UTF-8 when it is valid, windows-1252 otherwise, or always
/// windows-1252 when the document declared a single-byte encoding.
pub fn decode_field(bytes: &[u8], single_byte: bool) -> String {
    decode_text(bytes, single_byte).into_owned()
}

/// [`decode_field`] without copying valid UTF-8.
pub fn decode_text(bytes: &[u8], single_byte: bool) -> std::borrow::Cow<'_, str> {
    if !single_byte {
        if let Ok(s) = std::str::from_utf8(bytes) {
            return std::borrow::Cow::Borrowed(s);
        }
    }
    std::borrow::Cow::Owned(decode_cp1252(bytes))
}

/// True for encoding labels that mean a single-byte Latin encoding.
pub fn is_single_byte_label(label: &[u8]) -> bool {
    let label = label.to_ascii_lowercase();
    matches!(
        label.as_slice(),
        b"windows-1252" | b"cp1252" | b"iso-8859-1" | b"iso8859-1" | b"latin1" | b"latin-1" | b"us-ascii"
    ) || label.starts_with(b"iso-8859-15")
}

/// Trims ASCII whitespace (spaces, tabs, CR, LF) from both ends.
pub fn trim_ascii(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii_whitespace())
}

/// Parses a unix timestamp as receivers write it: an integer, possibly surrounded by
/// whitespace, or a float (`1538413632.0`), truncated to whole seconds.
pub fn parse_epoch(s: &str) -> Option<i64> {
    let s = trim_ascii(s);
    if let Ok(v) = s.parse::<i64>() {
        return Some(v);
    }
    let f: f64 = s.parse().ok()?;
    // The range check keeps `as` from saturating silently on absurd values.
    (f.is_finite() && f.abs() < 1e15).then(|| f.trunc() as i64)
}

/// Parses a message count: a non-negative integer, or a float with no fractional part.
pub fn parse_count(s: &str) -> Option<u64> {
    let s = trim_ascii(s);
    if let Ok(v) = s.parse::<u64>() {
        return Some(v);
    }
    let f: f64 = s.parse().ok()?;
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 1e15).then_some(f as u64)
}

/// Formats a count with thousands separators: `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// True for characters that can move the cursor, change colours, start a new line or
/// reorder what is shown on a terminal or in a log: C0 and C1 controls (tab excepted),
/// DEL, the line and paragraph separators, and the bidirectional marks, embeddings,
/// overrides and isolates.
pub fn is_unsafe_char(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Untrusted text made safe for a terminal or a log line: every [`is_unsafe_char`]
/// written as a `\u{…}` escape, so it is visible instead of acting.
pub fn escape_unsafe(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(is_unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `text` broken into lines of at most `width` characters, between words: runs of
/// spaces become one, a line break in `text` is kept, and a word longer than `width`
/// (a URL, a list of addresses) stands alone on its line rather than being cut, so
/// nothing is ever lost. Characters are counted, not display columns.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        let mut len = 0;
        for word in paragraph.split(' ').filter(|w| !w.is_empty()) {
            let n = word.chars().count();
            if len > 0 && len + 1 + n > width {
                lines.push(std::mem::take(&mut line));
                len = 0;
            }
            if len > 0 {
                line.push(' ');
                len += 1;
            }
            line.push_str(word);
            len += n;
        }
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_characters_are_escaped() {
        assert_eq!(escape_unsafe("plain\ttext é"), "plain\ttext é");
        assert_eq!(
            escape_unsafe("a\x1b]8;;http://x\x07b\r\nc\u{9b}d\u{202e}e"),
            "a\\u{1b}]8;;http://x\\u{7}b\\u{d}\\u{a}c\\u{9b}d\\u{202e}e"
        );
    }

    #[test]
    fn wrap_breaks_between_words_and_loses_nothing() {
        let text = "Rotate the key of selector s2024 (s2024._domainkey.example.com) now.";
        let lines = wrap(text, 20);
        assert_eq!(lines, ["Rotate the key of", "selector s2024", "(s2024._domainkey.example.com)", "now."]);
        assert!(lines.iter().all(|l| l.chars().count() <= 20 || !l.contains(' ')), "{lines:?}");
        assert_eq!(lines.join(" "), text, "every word kept, in order");
        assert_eq!(wrap("a  b\n\nc", 10), ["a b", "", "c"], "spaces collapse, blank lines stay");
        assert_eq!(wrap("", 10), Vec::<String>::new());
        assert_eq!(wrap("é é é", 3), ["é é", "é"], "characters, not bytes");
    }

    #[test]
    fn utf8_is_kept_and_invalid_utf8_reads_as_cp1252() {
        assert_eq!(decode_field("héllo".as_bytes(), false), "héllo");
        assert_eq!(decode_field(b"caf\xe9 \x80", false), "café €");
        assert_eq!(decode_field("é".as_bytes(), true), "Ã©");
    }

    #[test]
    fn epochs_and_counts_are_lenient_but_not_guessing() {
        assert_eq!(parse_epoch(" 1524268799 \t"), Some(1_524_268_799));
        assert_eq!(parse_epoch("1538413632.75"), Some(1_538_413_632));
        assert_eq!(parse_epoch("soon"), None);
        assert_eq!(parse_count("12"), Some(12));
        assert_eq!(parse_count("3.0"), Some(3));
        assert_eq!(parse_count("3.5"), None);
        assert_eq!(parse_count("-1"), None);
        assert_eq!(parse_count(""), None);
    }

    #[test]
    fn single_byte_labels() {
        assert!(is_single_byte_label(b"Windows-1252"));
        assert!(is_single_byte_label(b"ISO-8859-1"));
        assert!(!is_single_byte_label(b"UTF-8"));
    }
}
