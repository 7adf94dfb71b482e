//! MIME content transfer encodings (RFC 2045 §6): base64 and quoted-printable.
//!
//! Input: the body of one MIME part as it stands in the message; output: its bytes.
//! Both decoders are lenient the way mail clients are (characters outside the alphabet,
//! missing padding and stray `=` are passed over, never refused) and single-pass: the
//! output is never larger than the input.

use std::borrow::Cow;

/// A part's `Content-Transfer-Encoding`, as far as decoding goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TransferEncoding {
    /// `7bit`, `8bit`, `binary`, absent, or a word nobody defined: the bytes as they are.
    Identity,
    /// `base64`.
    Base64,
    /// `quoted-printable`.
    QuotedPrintable,
}

impl TransferEncoding {
    /// Reads the header's value (surrounding whitespace and case ignored).
    pub(super) fn of(value: &[u8]) -> Self {
        let value = value.trim_ascii();
        if value.eq_ignore_ascii_case(b"base64") {
            TransferEncoding::Base64
        } else if value.eq_ignore_ascii_case(b"quoted-printable") {
            TransferEncoding::QuotedPrintable
        } else {
            TransferEncoding::Identity
        }
    }

    /// Decodes `body`.
    pub(super) fn decode(self, body: &[u8]) -> Cow<'_, [u8]> {
        match self {
            TransferEncoding::Identity => Cow::Borrowed(body),
            TransferEncoding::Base64 => Cow::Owned(base64(body)),
            TransferEncoding::QuotedPrintable => Cow::Owned(quoted_printable(body)),
        }
    }
}

/// The value of one base64 character, or `None` for anything else (line breaks,
/// whitespace, garbage: skipped).
fn sextet(byte: u8) -> Option<u32> {
    let value = match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(value))
}

/// Decodes base64, stopping at the first `=` (padding ends the data).
fn base64(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &byte in body {
        if byte == b'=' {
            break;
        }
        let Some(value) = sextet(byte) else { continue };
        acc = (acc << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        _ => None,
    }
}

/// Decodes quoted-printable: `=XX` is a byte, `=` at the end of a line joins it to the
/// next (a soft line break), any other `=` is kept as it is.
fn quoted_printable(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let byte = body[i];
        if byte != b'=' {
            out.push(byte);
            i += 1;
            continue;
        }
        match (body.get(i + 1), body.get(i + 2)) {
            (Some(b'\r'), Some(b'\n')) => i += 3,
            (Some(b'\n'), _) => i += 2,
            (Some(&hi), Some(&lo)) if hex_digit(hi).is_some() && hex_digit(lo).is_some() => {
                out.push(hex_digit(hi).unwrap_or(0) << 4 | hex_digit(lo).unwrap_or(0));
                i += 3;
            }
            _ => {
                out.push(b'=');
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_lenient() {
        assert_eq!(base64(b"aGVsbG8gd29ybGQ="), b"hello world");
        assert_eq!(base64(b"aGVs\r\nbG8g\n d29y bGQ"), b"hello world", "breaks, spaces, no padding");
        assert_eq!(base64(b"aGVs!bG8="), b"hello", "garbage skipped");
        assert_eq!(base64(b""), b"");
    }

    #[test]
    fn quoted_printable_is_lenient() {
        assert_eq!(quoted_printable(b"a=3Db=\r\nc=\nd"), b"a=bcd");
        assert_eq!(quoted_printable(b"caf=C3=A9"), "café".as_bytes());
        assert_eq!(quoted_printable(b"50% = half=zz="), b"50% = half=zz=");
    }

    #[test]
    fn encoding_words_are_case_insensitive() {
        assert_eq!(TransferEncoding::of(b" Base64\r\n"), TransferEncoding::Base64);
        assert_eq!(TransferEncoding::of(b"QUOTED-PRINTABLE"), TransferEncoding::QuotedPrintable);
        assert_eq!(TransferEncoding::of(b"7bit"), TransferEncoding::Identity);
        assert_eq!(TransferEncoding::of(b"x-uuencode"), TransferEncoding::Identity);
    }
}
