//! Zip archives: every member, each held to its declared size.
//!
//! Input: a whole archive in memory; output: each file member to the walker as a stream.
//! Invariants: at most `max_zip_entries` members; members whose bytes overlap are refused
//! before anything is inflated (the shape of an amplification bomb: many entries pointing
//! at one compressed stream); a member that inflates past the size its entry declares is
//! corrupt; and every member's output is charged to the input's one budget.

use std::io::{BufReader, Cursor};

use super::{join, Walker};
use crate::capped::Capped;
use crate::error::Error;
use crate::limits::LimitExceeded;

impl<E> Walker<'_, E> {
    pub(super) fn zip(&mut self, location: String, data: &[u8], layers: u32) -> Result<(), E> {
        if layers >= self.limits.max_compression_layers {
            let err = LimitExceeded::CompressionLayers(self.limits.max_compression_layers);
            return self.broken(location, err.into());
        }
        let mut archive = match ::zip::ZipArchive::new(Cursor::new(data)) {
            Ok(archive) => archive,
            Err(err) => return self.broken(location, zip_error(err)),
        };
        if archive.len() > self.limits.max_zip_entries as usize {
            let err = LimitExceeded::ZipEntries(self.limits.max_zip_entries);
            return self.broken(location, err.into());
        }
        if let Err(err) = check_no_overlap(&mut archive) {
            return self.broken(location, err);
        }
        let mut found = 0;
        for index in 0..archive.len() {
            let member = match archive.by_index(index) {
                Ok(member) => member,
                Err(err) => {
                    self.broken(join(&location, &format!("entry {index}")), zip_error(err))?;
                    continue;
                }
            };
            if member.is_dir() {
                continue;
            }
            found += 1;
            let name = join(&location, member.name());
            let declared = member.size();
            let capped = Capped::new(member, self.budget.clone()).with_declared_size(declared);
            self.stream(name, Box::new(BufReader::with_capacity(64 << 10, capped)), layers + 1)?;
        }
        if found == 0 {
            return self.broken(location, Error::NotAReport("zip archive has no files".into()));
        }
        Ok(())
    }
}

/// Refuses an archive in which two entries share bytes (local header through compressed
/// data): no zip writer produces that; a bomb does.
fn check_no_overlap(archive: &mut ::zip::ZipArchive<Cursor<&[u8]>>) -> Result<(), Error> {
    let mut spans = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        // An entry that cannot be read is reported when it is visited.
        if let Ok(member) = archive.by_index_raw(index) {
            spans.push((member.header_start(), member.data_start().saturating_add(member.compressed_size())));
        }
    }
    spans.sort_unstable();
    if spans.windows(2).any(|pair| pair[1].0 < pair[0].1) {
        return Err(Error::Corrupt { format: "zip", detail: "entries overlap".into() });
    }
    Ok(())
}

fn zip_error(err: ::zip::result::ZipError) -> Error {
    match err {
        ::zip::result::ZipError::Io(io) => Error::from_io(&io, "zip"),
        other => Error::Corrupt { format: "zip", detail: other.to_string() },
    }
}
