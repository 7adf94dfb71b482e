//! Feeds arbitrary bytes to `read_reports`: content sniffing, gzip/zlib/zip/MIME walking
//! and every parser behind them, with small caps so a decompression bomb is cut at 1 MiB.
//! Passes unless something panics, hangs or exhausts memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ruaflow_schema::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_input_bytes: 1 << 20,
        max_decompressed_bytes: 1 << 20,
        max_buffered_bytes: 1 << 20,
        max_field_bytes: 4096,
        max_xml_depth: 16,
        max_records: 1_000,
        ..Limits::default()
    };
    let found = ruaflow_schema::read_reports(data, &limits);
    let _ = found;
});
