//! The `dir` source: report files named on the command line or found in directories.
//!
//! Input: paths (files, or directories walked recursively, hidden entries skipped).
//! Output: one Envelope per file, with the path as origin. Files larger than the input
//! cap are read only up to one byte past the cap, so the processor refuses them with a
//! clear dead letter instead of this source holding them in memory.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ruaflow_schema::{Envelope, Source};

/// Files under `paths`, directories walked recursively, each directory's entries in
/// name order so runs are repeatable. Hidden entries (`.name`) are skipped.
pub fn scan(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display())))?;
        if meta.is_dir() {
            walk(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot list {}: {e}", dir.display())))?
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// [`scan`], ordered oldest first by modification time (ties by path): the order in which
/// a mailbox or drop directory received the reports, which is the order detection
/// should see them in.
pub fn scan_oldest_first(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<(Option<SystemTime>, PathBuf)> = scan(paths)?
        .into_iter()
        .map(|path| (std::fs::metadata(&path).and_then(|m| m.modified()).ok(), path))
        .collect();
    files.sort();
    Ok(files.into_iter().map(|(_, path)| path).collect())
}

/// Reads a file into an Envelope, at most `max_input_bytes + 1` bytes of it.
pub fn read_envelope(path: &Path, max_input_bytes: u64) -> std::io::Result<Envelope> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(max_input_bytes.saturating_add(1)).read_to_end(&mut bytes)?;
    let mut envelope = Envelope::new(bytes, Source::Dir, path.display().to_string(), unix_now());
    envelope.filename = path.file_name().map(|n| n.to_string_lossy().into_owned());
    Ok(envelope)
}

/// Remembers which files were already handed out, by size and modification time, so a
/// watch loop picks up new and rewritten files only.
#[derive(Debug, Default)]
pub struct Seen {
    files: HashMap<PathBuf, (u64, Option<SystemTime>)>,
}

impl Seen {
    /// The files under `paths` that are new or changed since the last call, oldest first.
    pub fn changed(&mut self, paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for path in scan_oldest_first(paths)? {
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            let stamp = (meta.len(), meta.modified().ok());
            if self.files.get(&path) != Some(&stamp) {
                self.files.insert(path.clone(), stamp);
                out.push(path);
            }
        }
        Ok(out)
    }
}

/// The current time, unix seconds.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_walks_sorted_and_skips_hidden() {
        let dir = std::env::temp_dir().join(format!("ruaflow-dir-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
        for name in ["b.xml", "a.xml", ".hidden", "sub/c.xml"] {
            std::fs::write(dir.join(name), b"<feedback/>").expect("write");
        }
        let files = scan(std::slice::from_ref(&dir)).expect("scan");
        let names: Vec<_> =
            files.iter().map(|p| p.strip_prefix(&dir).expect("under").to_path_buf()).collect();
        assert_eq!(names, [PathBuf::from("a.xml"), "b.xml".into(), "sub/c.xml".into()]);

        let mut seen = Seen::default();
        assert_eq!(seen.changed(std::slice::from_ref(&dir)).expect("scan").len(), 3);
        assert!(seen.changed(std::slice::from_ref(&dir)).expect("scan").is_empty());
        std::fs::write(dir.join("a.xml"), b"<feedback></feedback>").expect("rewrite");
        assert_eq!(seen.changed(std::slice::from_ref(&dir)).expect("scan").len(), 1);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn oversized_files_are_read_one_byte_past_the_cap() {
        let path = std::env::temp_dir().join(format!("ruaflow-big-{}", std::process::id()));
        std::fs::write(&path, vec![b'x'; 100]).expect("write");
        let envelope = read_envelope(&path, 10).expect("read");
        assert_eq!(envelope.bytes.len(), 11);
        std::fs::remove_file(&path).expect("cleanup");
    }
}
