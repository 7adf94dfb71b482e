//! Feeds arbitrary bytes to the `multipart/form-data` splitter of the HTTP endpoint's
//! uploads. The first line is the boundary, the rest the body. Passes unless something
//! panics, hangs or exhausts memory; every part returned must lie inside the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (boundary, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let boundary = String::from_utf8_lossy(boundary);
    if let Ok(parts) = ruaflow_schema::multipart::parts(body, &boundary, 256) {
        assert!(parts.len() <= 256);
        let range = body.as_ptr_range();
        for part in parts {
            let inner = part.data.as_ptr_range();
            assert!(range.start <= inner.start && inner.end <= range.end);
        }
    }
});
