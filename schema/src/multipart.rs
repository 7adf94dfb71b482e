//! `multipart/form-data` bodies (RFC 7578): the files of an upload form.
//!
//! Input: a whole request body (already read under the body cap) and its boundary.
//! Output: the parts, each with its form field name, filename and bytes (borrowed from
//! the body). Invariant: nothing is copied or decoded; a malformed body is an error
//! with the reason, never a panic. Only what uploads need is handled: no nested
//! multipart/mixed, and a `Content-Transfer-Encoding` other than identity is refused
//! (RFC 7578 §4.7 deprecates it).

use memchr::memmem;

/// One part of a form.
#[derive(Debug, PartialEq, Eq)]
pub struct Part<'a> {
    /// The form field name.
    pub name: Option<String>,
    /// The uploaded file's name, when the part is a file.
    pub filename: Option<String>,
    /// The part's declared content type.
    pub content_type: Option<String>,
    /// The part's bytes.
    pub data: &'a [u8],
}

/// The boundary of a `multipart/form-data` content type, or `None` for another type.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let media = params.next()?.trim();
    if !media.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|p| {
        let (key, value) = p.split_once('=')?;
        key.trim().eq_ignore_ascii_case("boundary").then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// Splits `body` into its parts; more than `max_parts` is an error.
pub fn parts<'a>(body: &'a [u8], boundary: &str, max_parts: usize) -> Result<Vec<Part<'a>>, String> {
    if boundary.is_empty() || boundary.len() > 70 {
        return Err("multipart boundary must be 1 to 70 characters".into());
    }
    let delimiter = format!("--{boundary}");
    let finder = memmem::Finder::new(delimiter.as_bytes());
    let Some(first) = finder.find(body) else {
        return Err("multipart body does not contain its boundary".into());
    };
    let mut rest = &body[first + delimiter.len()..];
    let mut out = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(out); // the closing delimiter
        }
        // The rest of the delimiter line (transport padding, then CRLF).
        let line_end = memmem::find(rest, b"\r\n").ok_or("multipart part has no header line end")?;
        rest = &rest[line_end + 2..];
        let (headers, content) = if let Some(content) = rest.strip_prefix(b"\r\n") {
            (&rest[..0], content) // a part without headers
        } else {
            let end = memmem::find(rest, b"\r\n\r\n").ok_or("multipart part has no end of headers")?;
            (&rest[..end], &rest[end + 4..])
        };
        let close = format!("\r\n{delimiter}");
        let end =
            memmem::find(content, close.as_bytes()).ok_or("multipart part is not closed by the boundary")?;
        if out.len() == max_parts {
            return Err(format!("multipart body has more than {max_parts} parts"));
        }
        out.push(part(headers, &content[..end])?);
        rest = &content[end + close.len()..];
    }
}

fn part<'a>(headers: &[u8], data: &'a [u8]) -> Result<Part<'a>, String> {
    let headers = String::from_utf8_lossy(headers);
    let mut part = Part { name: None, filename: None, content_type: None, data };
    for line in headers.split("\r\n") {
        let Some((key, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "content-disposition" => {
                for param in value.split(';').skip(1) {
                    let Some((k, v)) = param.split_once('=') else { continue };
                    let v = v.trim().trim_matches('"').to_owned();
                    match k.trim().to_ascii_lowercase().as_str() {
                        "name" => part.name = Some(v),
                        "filename" => part.filename = Some(v),
                        _ => {}
                    }
                }
            }
            "content-type" => part.content_type = Some(value.to_owned()),
            "content-transfer-encoding"
                if !matches!(value.to_ascii_lowercase().as_str(), "binary" | "8bit" | "7bit") =>
            {
                return Err(format!(
                    "multipart Content-Transfer-Encoding {value} is not supported; send the file as is"
                ));
            }
            _ => {}
        }
    }
    Ok(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boundary_comes_from_the_content_type() {
        assert_eq!(boundary("multipart/form-data; boundary=abc").as_deref(), Some("abc"));
        assert_eq!(boundary("Multipart/Form-Data; charset=x; boundary=\"a b\"").as_deref(), Some("a b"));
        assert_eq!(boundary("application/gzip"), None);
        assert_eq!(boundary("multipart/form-data"), None);
    }

    #[test]
    fn files_are_split_out_with_their_names() {
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"report\"; filename=\"a.xml.gz\"\r\nContent-Type: application/gzip\r\n\r\n\x1f\x8b\r\n--not-it\r\n--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XyZ--\r\n";
        let found = parts(body, "XyZ", 8).expect("parses");
        assert!(parts(body, "XyZ", 1).is_err(), "over the part cap");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].filename.as_deref(), Some("a.xml.gz"));
        assert_eq!(found[0].name.as_deref(), Some("report"));
        assert_eq!(found[0].content_type.as_deref(), Some("application/gzip"));
        assert_eq!(found[0].data, b"\x1f\x8b\r\n--not-it");
        assert_eq!((found[1].filename.as_deref(), found[1].data), (None, &b"hello"[..]));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(parts(b"no boundary here", "XyZ", 8).is_err());
        assert!(parts(b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nunclosed", "XyZ", 8).is_err());
        let encoded = b"--XyZ\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--XyZ--";
        assert!(parts(encoded, "XyZ", 8).is_err());
        assert!(parts(b"--\r\n", "", 8).is_err());
    }
}
