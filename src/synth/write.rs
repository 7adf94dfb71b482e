//! Packaging and writing report files: receivers' file names, zip / gzip / plain.
//!
//! Input: a rendered document in [`Writer::doc`] and its file name. Output: one file in
//! `DIR/reports/`, packaged as the reporter does (Google: `.zip` holding one `.xml`
//! member of the same name; most others: `.xml.gz`; a few: plain `.xml`). Timestamps
//! inside the archives are the report's generation time, never the clock, so the bytes
//! depend only on the seed and options. Each file is built in memory and written with a
//! single `write` call. Written by arrival, the files go to one subdirectory per UTC day
//! they reach the mailbox (`reports/2026-09-02/`).

use std::fs;
use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use super::calendar::{civil, DAY_SECS};
use super::world::Container;

/// Subdirectory of the output directory that holds the report files.
pub const REPORTS_SUBDIR: &str = "reports";

/// Deflate level for gzip and zip: zlib's default, as receivers use.
const LEVEL: u32 = 6;

/// Builds and writes report files; counts files and bytes.
pub struct Writer {
    dir: PathBuf,
    by_arrival: bool,
    /// The document being built; [`Writer::emit`] packages and clears it.
    pub doc: Vec<u8>,
    packed: Vec<u8>,
    /// Files written.
    pub files: usize,
    /// Bytes of those files.
    pub bytes: u64,
}

impl Writer {
    /// A writer into `out/reports/` (created if missing); `by_arrival` puts each file in
    /// the subdirectory of the day it arrives.
    pub fn new(out: &Path, by_arrival: bool) -> io::Result<Self> {
        let dir = out.join(REPORTS_SUBDIR);
        fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            by_arrival,
            doc: Vec::with_capacity(1 << 20),
            packed: Vec::with_capacity(1 << 18),
            files: 0,
            bytes: 0,
        })
    }

    /// Packages [`Writer::doc`] as `container` under `name` (the uncompressed member's
    /// name, e.g. `google.com!example.com!1788220800!1788307199.xml`) and writes it.
    /// `generated` (unix seconds) becomes the archive timestamp and the file's time: when it
    /// reached the mailbox.
    pub fn emit(&mut self, name: &str, container: Container, generated: u64) -> io::Result<()> {
        self.packed.clear();
        let file_name = match container {
            Container::Plain => {
                std::mem::swap(&mut self.packed, &mut self.doc);
                name.to_owned()
            }
            Container::Gzip => {
                // gzip's header carries the original name and mtime, like `gzip -N` output.
                let mut gz: GzEncoder<&mut Vec<u8>> = GzBuilder::new()
                    .filename(name)
                    .mtime(generated as u32)
                    .write(&mut self.packed, Compression::new(LEVEL));
                gz.write_all(&self.doc)?;
                gz.finish()?;
                format!("{name}.gz")
            }
            Container::Zip => {
                let (y, mo, d, h, mi, s) = civil(generated);
                let time = DateTime::from_date_and_time(
                    y as u16,
                    mo as u8,
                    d as u8,
                    h as u8,
                    mi as u8,
                    s as u8 & !1,
                )
                .map_err(io::Error::other)?;
                let options = SimpleFileOptions::default()
                    .compression_method(CompressionMethod::Deflated)
                    .compression_level(Some(i64::from(LEVEL)))
                    .last_modified_time(time)
                    .unix_permissions(0o644);
                let mut zip = ZipWriter::new(Cursor::new(&mut self.packed));
                zip.start_file(name, options).map_err(io::Error::other)?;
                zip.write_all(&self.doc)?;
                zip.finish().map_err(io::Error::other)?;
                let stem = name.strip_suffix(".xml").unwrap_or(name);
                format!("{stem}.zip")
            }
        };
        let path = if self.by_arrival {
            let (y, mo, d, ..) = civil(generated - generated % DAY_SECS);
            let dir = self.dir.join(format!("{y:04}-{mo:02}-{d:02}"));
            fs::create_dir_all(&dir)?;
            dir.join(&file_name)
        } else {
            self.dir.join(&file_name)
        };
        fs::write(&path, &self.packed)?;
        // The file's time is when the receiver generated it, so inputs read oldest first
        // arrive in the order a mailbox would have received them.
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(generated);
        fs::File::options().write(true).open(&path)?.set_modified(when)?;
        self.files += 1;
        self.bytes += self.packed.len() as u64;
        self.doc.clear();
        Ok(())
    }
}
