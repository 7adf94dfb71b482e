//! Expanding INPUT arguments (files and directories) into a sorted list of files.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Files under `paths`, directories walked recursively, hidden entries (`.name`) skipped,
/// each directory's entries in name order so runs are repeatable.
pub fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            walk(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
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

/// Reads one input file, refusing it before reading when it exceeds `max_bytes`.
pub fn read_capped(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ruaflow_schema::Error> {
    let size = std::fs::metadata(path).map_err(|e| ruaflow_schema::Error::Io(e.to_string()))?.len();
    if size > max_bytes {
        return Err(ruaflow_schema::LimitExceeded::InputBytes(max_bytes).into());
    }
    std::fs::read(path).map_err(|e| ruaflow_schema::Error::Io(e.to_string()))
}
