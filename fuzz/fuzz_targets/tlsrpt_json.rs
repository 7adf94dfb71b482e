//! Feeds arbitrary bytes to the TLSRPT JSON parser with small caps (a 4 KiB string or
//! 100 failure details fit in the 16 KiB `-max_len` of the long runs). Passes unless it
//! panics, hangs or exhausts memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ruaflow_schema::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_field_bytes: 4096,
        max_records: 100,
        max_buffered_bytes: 1 << 20,
        ..Limits::default()
    };
    let _ = ruaflow_schema::tlsrpt::parse_report(data, &limits);
});
