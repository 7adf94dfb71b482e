//! `ruaflow backup --db FILE OUT`: a consistent copy of the SQLite store through
//! SQLite's online backup API, safe while `ruaflow run` writes (WAL: the copy is one
//! snapshot and the writer is never blocked). The copy is written beside OUT and
//! renamed into place once complete and checked, so OUT is never half a database.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rusqlite::{Connection, OpenFlags};

/// Arguments of `ruaflow backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The SQLite database to copy.
    #[arg(long, default_value = "ruaflow.db")]
    pub db: PathBuf,
    /// Where to write the copy (replaced if it exists).
    pub out: PathBuf,
}

pub fn run(args: BackupArgs) -> anyhow::Result<()> {
    let source = crate::report::query::open(&args.db)?;
    let name = args.out.file_name().context("OUT must name a file")?.to_string_lossy().into_owned();
    let tmp = args.out.with_file_name(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let copied = (|| -> anyhow::Result<()> {
        let mut target = Connection::open(&tmp)?;
        {
            let backup = rusqlite::backup::Backup::new(&source, &mut target)?;
            // All pages in one step: one read snapshot, so a concurrent writer cannot
            // make the copy restart (and never waits for it).
            backup.step(-1)?;
        }
        let check: String = target.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            anyhow::bail!("the copy fails SQLite's check: {check}");
        }
        // A self-contained file: no -wal beside it.
        target.pragma_update(None, "journal_mode", "DELETE")?;
        Ok(())
    })();
    if let Err(err) = copied {
        let _ = std::fs::remove_file(&tmp);
        return Err(err.context(format!("cannot back up {} to {}", args.db.display(), args.out.display())));
    }
    std::fs::rename(&tmp, &args.out).with_context(|| format!("cannot write {}", args.out.display()))?;
    let check = Connection::open_with_flags(&args.out, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let reports: i64 = check.query_row("SELECT COUNT(*) FROM reports", [], |r| r.get(0))?;
    println!("{} backed up to {} ({reports} reports)", args.db.display(), args.out.display());
    Ok(())
}
