//! What is done inside a logged-in session: the folders, the message list, one
//! message's bytes, the move out of the watched folder, and the decision where a message
//! goes ([`classify`]).

use async_imap::types::Capabilities;
use futures::TryStreamExt;

use ruaflow_schema::{survey, Limits};

use super::connect::Session;

/// What a session step returns: async-imap's error, given its context by the caller.
type Result<T> = async_imap::error::Result<T>;

/// Folder names shown at most when a folder is missing.
const FOLDERS_SHOWN: usize = 40;

/// Where a message goes after it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A DMARC aggregate or TLS report: stored, then `processed_folder`.
    Report,
    /// A DMARC failure (forensic) report: stored, then `failures_folder`.
    Failure,
    /// Mail with no report at all: `ignored_folder`, not enqueued.
    NoReport,
    /// Something that looked like a report but could not be read: stored as a dead
    /// letter, then `invalid_folder`.
    Invalid,
}

/// Decides where a message goes from what [`survey`] finds in it (pure; run it in
/// `spawn_blocking`, the parse is CPU-bound; streaming, so no report is held whole).
pub fn classify(bytes: &[u8], limits: &Limits) -> Verdict {
    let found = survey(bytes, limits);
    if found.failure > 0 {
        return Verdict::Failure;
    }
    if found.reports() > 0 {
        return Verdict::Report;
    }
    if found.error_count > 0 && found.error_count == found.no_report_count {
        return Verdict::NoReport;
    }
    Verdict::Invalid
}

/// The server's hierarchy delimiter (`LIST "" ""`); `/` when it names none.
pub(super) async fn hierarchy_delimiter(session: &mut Session) -> Result<String> {
    // `LIST "" ""` is the standard way (RFC 3501 §6.3.8); async-imap 0.11 yields no
    // entry for its empty name with Dovecot 2.3, so the top-level folders are asked too.
    for pattern in ["", "%"] {
        let names: Vec<_> = session.list(Some(""), Some(pattern)).await?.try_collect().await?;
        if let Some(delimiter) = names.iter().find_map(|n| n.delimiter()) {
            tracing::debug!(delimiter, "imap hierarchy delimiter");
            return Ok(delimiter.to_owned());
        }
    }
    Ok("/".to_owned())
}

/// When `folder` (in the server's delimiter) is not among the folders the server lists,
/// those folders, in `/` notation as the config writes them (at most [`FOLDERS_SHOWN`]);
/// `None` when it is listed (so a refused SELECT had another cause).
pub(super) async fn missing_folder(
    session: &mut Session,
    folder: &str,
    delimiter: &str,
) -> Result<Option<String>> {
    let names: Vec<_> = session.list(Some(""), Some("*")).await?.try_collect().await?;
    let mut names: Vec<&str> = names.iter().map(|n| n.name()).collect();
    // INBOX is case-insensitive (RFC 3501 §5.1); other names are the server's business.
    let same = |name: &str| {
        name == folder || (name.eq_ignore_ascii_case("INBOX") && folder.eq_ignore_ascii_case("INBOX"))
    };
    if names.iter().any(|name| same(name)) {
        return Ok(None);
    }
    names.sort_unstable();
    let mut shown: Vec<String> =
        names.iter().take(FOLDERS_SHOWN).map(|n| n.replace(delimiter, "/")).collect();
    if names.len() > FOLDERS_SHOWN {
        shown.push(format!("… ({} more)", names.len() - FOLDERS_SHOWN));
    }
    Ok(Some(if shown.is_empty() { "none".to_owned() } else { shown.join(", ") }))
}

/// Creates each folder that does not exist yet.
pub(super) async fn create_folders(session: &mut Session, folders: &[&str]) -> Result<()> {
    for folder in folders {
        match session.create(folder).await {
            Ok(()) => tracing::info!(folder = %folder, "imap folder created"),
            // Dovecot: `NO [ALREADYEXISTS] Mailbox already exists`.
            Err(async_imap::error::Error::No(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// UID and RFC822.SIZE of every message in the selected folder, oldest UID first.
pub(super) async fn list_messages(session: &mut Session) -> Result<Vec<(u32, u64)>> {
    let fetches: Vec<_> = session.uid_fetch("1:*", "(UID RFC822.SIZE)").await?.try_collect().await?;
    let mut messages: Vec<(u32, u64)> =
        fetches.iter().filter_map(|f| Some((f.uid?, u64::from(f.size.unwrap_or(0))))).collect();
    messages.sort_unstable();
    messages.dedup_by_key(|m| m.0);
    Ok(messages)
}

/// The whole message `uid` of the selected folder; `None` when it is gone (expunged by
/// someone else since the listing).
pub(super) async fn fetch_message(session: &mut Session, uid: u32) -> Result<Option<Vec<u8>>> {
    // BODY.PEEK[] leaves \Seen alone: the mailbox looks the same to a person reading it.
    let fetches: Vec<_> =
        session.uid_fetch(uid.to_string(), "(UID BODY.PEEK[])").await?.try_collect().await?;
    Ok(fetches.iter().find(|f| f.uid == Some(uid)).and_then(|f| f.body()).map(<[u8]>::to_vec))
}

/// Moves one message: UID MOVE (RFC 6851) when offered, else UID COPY + \Deleted + UID
/// EXPUNGE (UIDPLUS, RFC 4315), else COPY + \Deleted + EXPUNGE (which also expunges
/// anything else someone flagged \Deleted in this folder — the best a bare IMAP4rev1
/// server allows).
pub(super) async fn move_message(
    session: &mut Session,
    caps: &Capabilities,
    uid: u32,
    to: &str,
) -> Result<()> {
    let uid = uid.to_string();
    if caps.has_str("MOVE") {
        session.uid_mv(&uid, to).await?;
        return Ok(());
    }
    session.uid_copy(&uid, to).await?;
    let _: Vec<_> = session.uid_store(&uid, "+FLAGS.SILENT (\\Deleted)").await?.try_collect().await?;
    if caps.has_str("UIDPLUS") {
        let _: Vec<_> = session.uid_expunge(&uid).await?.try_collect().await?;
    } else {
        let _: Vec<_> = session.expunge().await?.try_collect().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_by_content() {
        let limits = Limits::default();
        let plain = b"From: a@example.com\r\nSubject: hello\r\nContent-Type: text/plain\r\n\r\nhi\r\n";
        assert_eq!(classify(plain, &limits), Verdict::NoReport);
        let broken = b"From: a@example.com\r\nSubject: Report domain: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/gzip\r\nContent-Disposition: attachment; filename=r.xml.gz\r\nContent-Transfer-Encoding: base64\r\n\r\nH4sIAAAAAAAAA0tMTAQA\r\n--b--\r\n";
        assert_eq!(classify(broken, &limits), Verdict::Invalid);
        let xml = br#"<?xml version="1.0"?><feedback><report_metadata><org_name>x</org_name><email>a@x</email><report_id>1</report_id><date_range><begin>1</begin><end>2</end></date_range></report_metadata><policy_published><domain>example.com</domain><p>none</p></policy_published><record><row><source_ip>192.0.2.1</source_ip><count>1</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers><auth_results><spf><domain>example.com</domain><result>pass</result></spf></auth_results></record></feedback>"#;
        assert_eq!(classify(xml, &limits), Verdict::Report);
        let failure = b"From: a@example.org\r\nSubject: DMARC failure\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nA message failed DMARC.\r\n--b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: auth-failure\r\nUser-Agent: test/1.0\r\nVersion: 1\r\nAuth-Failure: dmarc\r\nReported-Domain: example.com\r\nSource-IP: 192.0.2.7\r\n\r\n--b--\r\n";
        assert_eq!(classify(failure, &limits), Verdict::Failure);
    }
}
