//! How a watched mailbox that keeps failing is retried and reported.
//!
//! A new problem is logged once — at ERROR when only a person can fix it (a refused
//! login, a missing folder), at WARN otherwise — with when the next attempt comes. The
//! same problem again is logged only at DEBUG, plus a reminder every [`REMINDER`] saying
//! how long it has lasted; the first successful login after it says so once. Attempts
//! back off exponentially, more slowly for permanent problems (a server locking an
//! account after repeated failed logins should not be provoked), and the delay is reset
//! by a successful login.

use std::time::Duration;

use tokio::time::Instant;

use super::ImapError;

/// How often a problem that lasts is mentioned again.
pub(super) const REMINDER: Duration = Duration::from_secs(15 * 60);

/// Delays between attempts: (first, longest) for transient and permanent problems.
const TRANSIENT_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(5 * 60));
const PERMANENT_BACKOFF: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(15 * 60));

/// The problem being reported and since when.
struct Episode {
    /// The error's text: the same text is the same problem.
    what: String,
    since: Instant,
    attempts: u32,
    reminded: Instant,
}

/// One mailbox's failures: what has been said about them and the next delay.
pub(super) struct Trouble {
    mailbox: String,
    episode: Option<Episode>,
    delay: Option<Duration>,
}

impl Trouble {
    pub(super) fn new(mailbox: String) -> Self {
        Self { mailbox, episode: None, delay: None }
    }

    /// Records a failed attempt, reports it as the rules above say, and returns how long
    /// to wait before the next one.
    pub(super) fn failed(&mut self, err: &ImapError) -> Duration {
        let (first, longest) = if err.is_permanent() { PERMANENT_BACKOFF } else { TRANSIENT_BACKOFF };
        let delay = self.delay.map_or(first, |d| (d * 2).clamp(first, longest));
        self.delay = Some(delay);
        let now = Instant::now();
        let what = err.to_string();
        let retry_in_secs = delay.as_secs();
        let mailbox = &self.mailbox;
        match &mut self.episode {
            Some(episode) if episode.what == what => {
                episode.attempts += 1;
                if now.duration_since(episode.reminded) >= REMINDER {
                    episode.reminded = now;
                    let failing_for_mins = now.duration_since(episode.since).as_secs() / 60;
                    let attempts = episode.attempts;
                    if err.is_permanent() {
                        tracing::error!(mailbox = %mailbox, attempts, failing_for_mins, retry_in_secs, error = %err, "imap mailbox still unavailable");
                    } else {
                        tracing::warn!(mailbox = %mailbox, attempts, failing_for_mins, retry_in_secs, error = %err, "imap mailbox still unavailable");
                    }
                } else {
                    tracing::debug!(mailbox = %mailbox, retry_in_secs, error = %err, "imap attempt failed again");
                }
            }
            _ => {
                if err.is_permanent() {
                    tracing::error!(mailbox = %mailbox, retry_in_secs, error = %err, "imap mailbox unavailable");
                } else {
                    tracing::warn!(mailbox = %mailbox, retry_in_secs, error = %err, "imap mailbox unavailable");
                }
                self.episode = Some(Episode { what, since: now, attempts: 1, reminded: now });
            }
        }
        delay
    }

    /// Records a successful login: ends the problem (saying so) and resets the delay.
    pub(super) fn logged_in(&mut self) {
        self.delay = None;
        if let Some(episode) = self.episode.take() {
            tracing::info!(
                mailbox = %self.mailbox,
                failed_attempts = episode.attempts,
                "imap mailbox available again"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> ImapError {
        ImapError::Refused {
            account: "dmarc at imap.example.com:993".into(),
            reason: "AUTHENTICATIONFAILED".into(),
        }
    }

    fn unreachable() -> ImapError {
        ImapError::Connect { server: "imap.example.com:993".into(), reason: "connection refused".into() }
    }

    #[tokio::test(start_paused = true)]
    async fn capped_backoff_reset_by_a_login() {
        let mut trouble = Trouble::new("dmarc@imap.example.com/INBOX".into());
        let delays: Vec<u64> = (0..12).map(|_| trouble.failed(&refused()).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 320, 640, 900, 900, 900, 900]);
        trouble.logged_in();
        assert_eq!(trouble.failed(&unreachable()), Duration::from_secs(1), "reset, transient");
        let longest = (0..20).map(|_| trouble.failed(&unreachable())).max();
        assert_eq!(longest, Some(Duration::from_secs(300)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_problem_is_told_once_then_reminded() {
        let mut trouble = Trouble::new("m".into());
        trouble.failed(&refused());
        let first = trouble.episode.as_ref().map(|e| e.reminded);
        tokio::time::advance(Duration::from_secs(60)).await;
        trouble.failed(&refused());
        let episode = trouble.episode.as_ref().expect("ongoing");
        assert_eq!((episode.attempts, Some(episode.reminded)), (2, first), "a repeat is no reminder");
        tokio::time::advance(REMINDER).await;
        trouble.failed(&refused());
        let episode = trouble.episode.as_ref().expect("ongoing");
        assert!(Some(episode.reminded) > first, "a reminder after {REMINDER:?}");
        trouble.failed(&unreachable());
        let episode = trouble.episode.as_ref().expect("ongoing");
        assert_eq!(episode.attempts, 1, "another problem is a new episode");
        trouble.logged_in();
        assert!(trouble.episode.is_none());
    }
}
