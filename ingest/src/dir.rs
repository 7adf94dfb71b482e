//! The `dir` source: report files named on the command line or found in directories.
//!
//! Input: paths (files, or directories walked, hidden entries skipped). Output: one
//! Envelope per regular file, with the path as origin, and one per thing that could not
//! be read (an unreadable directory or file, a path too long, a FIFO, a symbolic link
//! out of the input tree), carrying the reason, so it becomes a dead letter instead of
//! stopping the run.
//!
//! Invariants: a scan never fails as a whole and never blocks (only regular files are
//! opened, and without waiting: a FIFO that appears in place of a file is refused, not
//! read); the walk is iterative, so no directory depth can exhaust the stack; symbolic
//! links are followed only when they stay inside the input tree, unless
//! `follow_symlinks` is set; files larger than the input cap are read only up to one
//! byte past the cap, so the processor refuses them with a clear dead letter instead of
//! this source holding them in memory.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ruaflow_schema::{Envelope, Source};

/// What to read besides plain files and directories (`[files]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirConfig {
    /// Follow symbolic links that lead out of the input directories (off: such a link
    /// is reported and skipped; links inside the tree are always followed).
    pub follow_symlinks: bool,
}

/// The result of one walk: the files to read, and what could not be walked.
#[derive(Debug, Default)]
pub struct Scan {
    /// Regular files, each directory's entries in name order.
    pub files: Vec<PathBuf>,
    /// Paths that could not be read, with the reason.
    pub problems: Vec<(PathBuf, String)>,
}

/// Walks `paths`. Directories are walked in name order so runs are repeatable; hidden
/// entries (`.name`) are skipped; nothing here fails or blocks: what cannot be read is a
/// problem in the result.
pub fn scan(paths: &[PathBuf], config: &DirConfig) -> Scan {
    let mut scan = Scan::default();
    // Symbolic links may lead anywhere under these (the inputs as given, resolved).
    let roots: Vec<PathBuf> = paths.iter().filter_map(|p| std::fs::canonicalize(p).ok()).collect();
    let mut walked = HashSet::new();
    for path in paths {
        // A path named on the command line is read whatever it is a link to.
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => walk(path, &roots, config, &mut walked, &mut scan),
            Ok(meta) if meta.is_file() => scan.files.push(path.clone()),
            Ok(meta) => scan.problems.push((path.clone(), not_regular(&meta))),
            Err(err) => scan.problems.push((path.clone(), format!("cannot read: {err}"))),
        }
    }
    scan
}

/// Walks one directory tree depth-first without recursion: a stack of sorted entry lists.
fn walk(top: &Path, roots: &[PathBuf], config: &DirConfig, walked: &mut HashSet<PathBuf>, scan: &mut Scan) {
    let mut stack = Vec::new();
    if let Some(entries) = list(top, walked, scan) {
        stack.push(entries.into_iter());
    }
    while let Some(entries) = stack.last_mut() {
        let Some(path) = entries.next() else {
            stack.pop();
            continue;
        };
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(err) => {
                scan.problems.push((path, format!("cannot read: {err}")));
                continue;
            }
        };
        let meta = if meta.file_type().is_symlink() {
            match follow(&path, roots, config) {
                Ok(meta) => meta,
                Err(reason) => {
                    scan.problems.push((path, reason));
                    continue;
                }
            }
        } else {
            meta
        };
        if meta.is_dir() {
            if let Some(entries) = list(&path, walked, scan) {
                stack.push(entries.into_iter());
            }
        } else if meta.is_file() {
            scan.files.push(path);
        } else {
            scan.problems.push((path, not_regular(&meta)));
        }
    }
}

/// The visible entries of a directory in name order; `None` when it was walked already
/// (a link loop) or cannot be listed (then a problem is noted).
fn list(dir: &Path, walked: &mut HashSet<PathBuf>, scan: &mut Scan) -> Option<Vec<PathBuf>> {
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if !walked.insert(real) {
        return None;
    }
    let reader = match std::fs::read_dir(dir) {
        Ok(reader) => reader,
        Err(err) => {
            scan.problems.push((dir.to_path_buf(), format!("cannot list directory: {err}")));
            return None;
        }
    };
    let mut names = Vec::new();
    for entry in reader {
        match entry {
            Ok(entry) if entry.file_name().to_string_lossy().starts_with('.') => {}
            Ok(entry) => names.push(entry.path()),
            Err(err) => {
                scan.problems.push((dir.to_path_buf(), format!("cannot list directory: {err}")));
                break;
            }
        }
    }
    names.sort();
    Some(names)
}

/// The metadata of a symbolic link's target, if the link may be followed.
fn follow(link: &Path, roots: &[PathBuf], config: &DirConfig) -> Result<std::fs::Metadata, String> {
    let target = std::fs::canonicalize(link).map_err(|err| format!("broken symbolic link: {err}"))?;
    if !config.follow_symlinks && !roots.iter().any(|root| target.starts_with(root)) {
        return Err(format!(
            "not read: a symbolic link to {} outside the input directories (set [files] follow_symlinks = true to read it)",
            target.display()
        ));
    }
    std::fs::metadata(&target).map_err(|err| format!("cannot read: {err}"))
}

fn not_regular(meta: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    let kind = {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            "a fifo"
        } else if t.is_socket() {
            "a socket"
        } else if t.is_block_device() || t.is_char_device() {
            "a device"
        } else {
            "not a regular file"
        }
    };
    #[cfg(not(unix))]
    let kind = {
        let _ = meta;
        "not a regular file"
    };
    format!("not read: {kind}, not a regular file")
}

/// [`scan`], ordered oldest first by modification time (ties by path): the order in which
/// a mailbox or drop directory received the reports, which is the order detection
/// should see them in.
pub fn scan_oldest_first(paths: &[PathBuf], config: &DirConfig) -> Scan {
    let mut scan = scan(paths, config);
    let mut files: Vec<(Option<SystemTime>, PathBuf)> = std::mem::take(&mut scan.files)
        .into_iter()
        .map(|path| (std::fs::metadata(&path).and_then(|m| m.modified()).ok(), path))
        .collect();
    files.sort();
    scan.files = files.into_iter().map(|(_, path)| path).collect();
    scan
}

/// Opens a file for reading only if it is a regular file, without ever waiting: a FIFO
/// swapped in after the walk would otherwise block the open (until a writer appears)
/// and then every read.
fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        /// `O_NONBLOCK` on Linux: opening a FIFO returns at once instead of waiting for a
        /// writer (it has no effect on a regular file).
        const O_NONBLOCK: i32 = 0o4000;
        options.custom_flags(O_NONBLOCK);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, not_regular(&meta)));
    }
    Ok(file)
}

/// Reads a file into an Envelope, at most `max_input_bytes + 1` bytes of it. A file that
/// cannot be read becomes an Envelope that says why (see [`unreadable`]).
pub fn read_envelope(path: &Path, max_input_bytes: u64) -> Envelope {
    let mut bytes = Vec::new();
    let read = open_regular(path)
        .and_then(|file| file.take(max_input_bytes.saturating_add(1)).read_to_end(&mut bytes));
    let mut envelope = match read {
        Ok(_) => Envelope::new(bytes, Source::Dir, path.display().to_string(), ruaflow_schema::clock::now()),
        Err(err) => return unreadable(path, &format!("cannot read: {err}")),
    };
    envelope.filename = path.file_name().map(|n| n.to_string_lossy().into_owned());
    envelope
}

/// The Envelope of a path that could not be read: no bytes, the reason.
pub fn unreadable(path: &Path, reason: &str) -> Envelope {
    let mut envelope =
        Envelope::unreadable(Source::Dir, path.display().to_string(), reason, ruaflow_schema::clock::now());
    envelope.filename = path.file_name().map(|n| n.to_string_lossy().into_owned());
    envelope
}

/// Remembers which files were already handed out, by size and modification time, and
/// which problems were reported, so a watch loop picks up new and rewritten files only
/// and reports each problem once.
#[derive(Debug, Default)]
pub struct Seen {
    files: HashMap<PathBuf, (u64, Option<SystemTime>)>,
    problems: HashSet<(PathBuf, String)>,
}

/// What changed since the last look.
#[derive(Debug, Default)]
pub struct Changes {
    /// New or changed files, oldest first.
    pub files: Vec<PathBuf>,
    /// Problems not reported before.
    pub problems: Vec<(PathBuf, String)>,
}

impl Seen {
    /// The files under `paths` that are new or changed since the last call, oldest
    /// first, and the problems not seen before.
    pub fn changed(&mut self, paths: &[PathBuf], config: &DirConfig) -> Changes {
        let scan = scan_oldest_first(paths, config);
        let mut out = Changes::default();
        for path in scan.files {
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            let stamp = (meta.len(), meta.modified().ok());
            if self.files.get(&path) != Some(&stamp) {
                self.files.insert(path.clone(), stamp);
                out.files.push(path);
            }
        }
        for problem in scan.problems {
            if self.problems.insert(problem.clone()) {
                out.problems.push(problem);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ruaflow-dir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    fn relative(dir: &Path, paths: &[PathBuf]) -> Vec<PathBuf> {
        paths.iter().map(|p| p.strip_prefix(dir).expect("under").to_path_buf()).collect()
    }

    #[test]
    fn scan_walks_sorted_and_skips_hidden() {
        let dir = tempdir("sorted");
        std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
        for name in ["b.xml", "a.xml", ".hidden", "sub/c.xml"] {
            std::fs::write(dir.join(name), b"<feedback/>").expect("write");
        }
        let config = DirConfig::default();
        let scanned = scan(std::slice::from_ref(&dir), &config);
        assert_eq!(
            relative(&dir, &scanned.files),
            [PathBuf::from("a.xml"), "b.xml".into(), "sub/c.xml".into()]
        );
        assert!(scanned.problems.is_empty(), "{:?}", scanned.problems);

        let mut seen = Seen::default();
        assert_eq!(seen.changed(std::slice::from_ref(&dir), &config).files.len(), 3);
        assert!(seen.changed(std::slice::from_ref(&dir), &config).files.is_empty());
        std::fs::write(dir.join("a.xml"), b"<feedback></feedback>").expect("rewrite");
        assert_eq!(seen.changed(std::slice::from_ref(&dir), &config).files.len(), 1);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[cfg(unix)]
    #[test]
    fn what_cannot_be_read_is_reported_not_fatal_and_nothing_blocks() {
        let dir = tempdir("hostile");
        std::fs::write(dir.join("good.xml"), b"<feedback/>").expect("write");
        // A FIFO: opening it for reading would wait for a writer forever.
        let fifo = dir.join("pipe.xml");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
        // A symbolic link out of the tree, one inside it, and a loop.
        let outside = tempdir("outside");
        std::fs::write(outside.join("secret.xml"), b"<feedback/>").expect("write");
        std::os::unix::fs::symlink(outside.join("secret.xml"), dir.join("out.xml")).expect("symlink");
        std::os::unix::fs::symlink(dir.join("good.xml"), dir.join("in.xml")).expect("symlink");
        std::os::unix::fs::symlink(&dir, dir.join("loop")).expect("symlink");
        // A tree deeper than any recursion would survive on a small stack.
        let mut deep = dir.join("deep");
        for _ in 0..200 {
            deep = deep.join("d");
        }
        std::fs::create_dir_all(&deep).expect("deep");
        std::fs::write(deep.join("bottom.xml"), b"<feedback/>").expect("write");

        let config = DirConfig::default();
        let paths = vec![dir.clone()];
        let scanned = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || scan(&paths, &DirConfig::default()))
            .expect("spawn")
            .join()
            .expect("no overflow");
        let files = relative(&dir, &scanned.files);
        assert!(files.contains(&"good.xml".into()) && files.contains(&"in.xml".into()), "{files:?}");
        assert!(files.iter().any(|f| f.ends_with("bottom.xml")), "{files:?}");
        assert!(!files.iter().any(|f| f.ends_with("out.xml") || f.ends_with("pipe.xml")), "{files:?}");
        let problems: HashMap<_, _> = scanned.problems.into_iter().collect();
        assert!(problems[&fifo].contains("a fifo"), "{problems:?}");
        assert!(problems[&dir.join("out.xml")].contains("outside the input directories"), "{problems:?}");

        // Opening the FIFO directly (a file swapped for one after the walk) returns at once.
        let envelope = read_envelope(&fifo, 1 << 20);
        assert!(envelope.bytes.is_empty());
        assert!(envelope.read_error.as_deref().is_some_and(|e| e.contains("fifo")), "{envelope:?}");

        let followed = scan(std::slice::from_ref(&dir), &DirConfig { follow_symlinks: true });
        assert!(relative(&dir, &followed.files).contains(&"out.xml".into()));
        let _ = config;
        std::fs::remove_dir_all(&dir).expect("cleanup");
        std::fs::remove_dir_all(&outside).expect("cleanup");
    }

    #[test]
    fn oversized_files_are_read_one_byte_past_the_cap() {
        let path = std::env::temp_dir().join(format!("ruaflow-big-{}", std::process::id()));
        std::fs::write(&path, vec![b'x'; 100]).expect("write");
        let envelope = read_envelope(&path, 10);
        assert_eq!(envelope.bytes.len(), 11);
        std::fs::remove_file(&path).expect("cleanup");
    }

    #[test]
    fn unreadable_paths_become_envelopes_with_the_reason() {
        let missing = std::env::temp_dir().join("ruaflow-no-such-file").join("x".repeat(300));
        let envelope = read_envelope(&missing, 10);
        assert!(envelope.bytes.is_empty());
        assert!(envelope.read_error.as_deref().is_some_and(|e| e.starts_with("cannot read")), "{envelope:?}");
        assert_ne!(
            envelope.sha256,
            unreadable(Path::new("other"), "cannot read").sha256,
            "one identity per path"
        );
    }
}
