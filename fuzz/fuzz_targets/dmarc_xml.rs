//! Streams arbitrary bytes through the DMARC pull parser with small caps, so the fuzzer
//! reaches the depth, field and record limits (1,000 records is about 9 KB of `<record/>`,
//! within the 64 KiB `-max_len` of the long runs). Passes unless the parser panics, hangs
//! or exhausts memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ruaflow_schema::dmarc::DmarcReader;
use ruaflow_schema::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_field_bytes: 4096,
        max_xml_depth: 16,
        max_records: 1_000,
        ..Limits::default()
    };
    let mut reader = DmarcReader::new(data, &limits);
    let _header = reader.header();
    // Records are read even after a header error: the pipeline never does, but the
    // parser must still not panic if a caller does.
    loop {
        match reader.next_record() {
            Ok(Some(record)) => {
                let _ = record;
            }
            Ok(None) | Err(_) => break,
        }
    }
    let _ = reader.take_warnings();
});
