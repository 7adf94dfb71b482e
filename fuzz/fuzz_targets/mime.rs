//! Feeds arbitrary bytes to the MIME walk as a mail message: every input is read as one
//! (a header line is put in front when it does not start like one), so the fuzzer spends
//! its time in MIME structure, transfer encodings, nesting and the caps on them rather
//! than in format sniffing. Run with the production stack size (see run.sh). Passes
//! unless something panics, hangs, overflows the stack or exhausts memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ruaflow_schema::unpack::{sniff, Format};
use ruaflow_schema::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_input_bytes: 1 << 20,
        max_decompressed_bytes: 1 << 20,
        max_buffered_bytes: 1 << 20,
        max_field_bytes: 4096,
        max_records: 1_000,
        ..Limits::default()
    };
    let message = match sniff(&data[..data.len().min(512)]) {
        Format::Mail | Format::Mbox => data.to_vec(),
        _ => [b"Subject: fuzz\r\n".as_slice(), data].concat(),
    };
    let _ = ruaflow_schema::survey(&message, &limits);
});
