//! The practical ceiling for `ruaflow parse`: plain decompress + XML tokenize, with no
//! model building. Walks the same files, reads each whole (as ruaflow does), decompresses
//! gzip (several layers), raw zlib and zip members through 64 KiB buffered readers, and
//! runs quick-xml over every event of every XML document, building nothing. It counts
//! events and `<record>` start tags so the work cannot be optimized away and so the
//! totals can be checked against `ruaflow parse`.
//!
//!     cargo build --release --manifest-path bench/ceiling/Cargo.toml
//!     bench/ceiling/target/release/ruaflow-bench-ceiling [--threads N] PATH...
//!
//! PATH is a file or a directory (walked recursively). Files are shared among N threads
//! (default: the CPUs this process may run on, as `ruaflow parse` does). Non-XML
//! documents (JSON TLS reports, mail messages, anything else) are only decompressed and
//! drained, not tokenized, so on inputs with many of those the ceiling is optimistic.
//! Prints one JSON object: files, on-disk bytes, decompressed document bytes, XML
//! documents, XML events, record elements, other documents, errors.
//!
//! The quick-xml configuration is the same as ruaflow's DMARC reader (no end-name
//! check, unmatched ends and dangling `&` allowed, comments not checked).

use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use flate2::read::{MultiGzDecoder, ZlibDecoder};
use quick_xml::events::Event;

/// Decompression layers followed at most (ruaflow's default cap is 3).
const MAX_LAYERS: u32 = 3;

#[derive(Default, Clone, Copy)]
struct Totals {
    files: u64,
    disk_bytes: u64,
    doc_bytes: u64,
    xml_docs: u64,
    xml_events: u64,
    records: u64,
    other_docs: u64,
    errors: u64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.files += o.files;
        self.disk_bytes += o.disk_bytes;
        self.doc_bytes += o.doc_bytes;
        self.xml_docs += o.xml_docs;
        self.xml_events += o.xml_events;
        self.records += o.records;
        self.other_docs += o.other_docs;
        self.errors += o.errors;
    }
}

/// Counts the bytes read through it (the decompressed document size).
struct Counting<R> {
    inner: R,
    n: u64,
}

impl<R: BufRead> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.n += amt as u64;
        self.inner.consume(amt);
    }
}

fn main() {
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--threads" {
            threads = args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage());
        } else if arg.starts_with('-') {
            usage();
        } else {
            paths.push(PathBuf::from(arg));
        }
    }
    if paths.is_empty() || threads == 0 {
        usage();
    }
    let mut files = Vec::new();
    for p in &paths {
        walk(p, &mut files);
    }

    let next = AtomicUsize::new(0);
    let total = Mutex::new(Totals::default());
    std::thread::scope(|scope| {
        for _ in 0..threads.min(files.len().max(1)) {
            scope.spawn(|| {
                let mut mine = Totals::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(i) else { break };
                    file(path, &mut mine);
                }
                if let Ok(mut t) = total.lock() {
                    t.add(&mine);
                }
            });
        }
    });
    let t = total.into_inner().unwrap_or_default();
    println!(
        "{{\"threads\":{threads},\"files\":{},\"disk_bytes\":{},\"doc_bytes\":{},\"xml_docs\":{},\"xml_events\":{},\"records\":{},\"other_docs\":{},\"errors\":{}}}",
        t.files, t.disk_bytes, t.doc_bytes, t.xml_docs, t.xml_events, t.records, t.other_docs, t.errors
    );
}

fn usage() -> ! {
    eprintln!("usage: ruaflow-bench-ceiling [--threads N] PATH...");
    std::process::exit(2);
}

fn walk(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let Ok(rd) = std::fs::read_dir(path) else { return };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries {
            walk(&e, out);
        }
    } else {
        out.push(path.to_path_buf());
    }
}

fn file(path: &Path, t: &mut Totals) {
    t.files += 1;
    let Ok(bytes) = std::fs::read(path) else {
        t.errors += 1;
        return;
    };
    t.disk_bytes += bytes.len() as u64;
    stream(&mut &bytes[..], 0, t);
}

/// One document as a stream: sniff, then unwrap a layer or tokenize.
fn stream(input: &mut dyn BufRead, layers: u32, t: &mut Totals) {
    let head = match input.fill_buf() {
        Ok(h) => h,
        Err(_) => {
            t.errors += 1;
            return;
        }
    };
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let zlib = head.len() >= 2 && head[0] & 0x0f == 8 && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
    let zip = head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06");
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let xml = text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');

    if (gzip || zlib || zip) && layers >= MAX_LAYERS {
        t.errors += 1;
        return;
    }
    if gzip {
        let mut r = BufReader::with_capacity(64 << 10, MultiGzDecoder::new(input));
        stream(&mut r, layers + 1, t);
    } else if zlib {
        let mut r = BufReader::with_capacity(64 << 10, ZlibDecoder::new(input));
        stream(&mut r, layers + 1, t);
    } else if zip {
        let mut data = Vec::new();
        if input.read_to_end(&mut data).is_err() {
            t.errors += 1;
            return;
        }
        let Ok(mut archive) = zip::ZipArchive::new(Cursor::new(&data[..])) else {
            t.errors += 1;
            return;
        };
        for i in 0..archive.len() {
            let Ok(member) = archive.by_index(i) else {
                t.errors += 1;
                continue;
            };
            if member.is_dir() {
                continue;
            }
            let mut r = BufReader::with_capacity(64 << 10, member);
            stream(&mut r, layers + 1, t);
        }
    } else if xml {
        let mut counted = Counting { inner: input, n: 0 };
        tokenize(&mut counted, t);
        t.doc_bytes += counted.n;
    } else {
        let n = std::io::copy(input, &mut std::io::sink()).unwrap_or(0);
        t.doc_bytes += n;
        t.other_docs += 1;
    }
}

/// Every XML event, nothing kept.
fn tokenize<R: BufRead>(input: R, t: &mut Totals) {
    t.xml_docs += 1;
    let mut xml = quick_xml::Reader::from_reader(input);
    let config = xml.config_mut();
    config.check_end_names = false;
    config.allow_unmatched_ends = true;
    config.allow_dangling_amp = true;
    config.check_comments = false;
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        match xml.read_event_into(&mut buf) {
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) => {
                t.xml_events += 1;
                if e.local_name().as_ref().eq_ignore_ascii_case(b"record") {
                    t.records += 1;
                }
            }
            Ok(_) => t.xml_events += 1,
            Err(_) => {
                t.errors += 1;
                break;
            }
        }
    }
}
