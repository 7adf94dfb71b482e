//! How an endpoint that keeps failing is reported: once per problem, not once per attempt.
//!
//! A new problem is logged once — at ERROR when only a person can fix it (a refused
//! login, an unreadable password, an untrusted certificate, a permanent refusal), at
//! WARN otherwise (the server is unreachable, or answers "try again later"). The same
//! problem again, on a retry or for the next alert, is logged at DEBUG, with a reminder
//! every [`REMINDER`] saying how long it has lasted; the first delivery after it says
//! so once. Whether an alert was given up on is said by the sink thread, per alert.

use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};

use super::SinkError;

/// How often a problem that lasts is mentioned again.
const REMINDER: Duration = Duration::from_secs(15 * 60);

/// The problem being reported and since when.
struct Episode {
    /// The error's text: the same text is the same problem.
    what: String,
    since: Instant,
    attempts: u32,
    reminded: Instant,
}

/// One endpoint's failures and what has been said about them.
pub(crate) struct Trouble {
    endpoint: String,
    episode: Option<Episode>,
}

impl Trouble {
    /// No problem yet; `endpoint` is the label logs show.
    pub fn new(endpoint: String) -> Trouble {
        Trouble { endpoint, episode: None }
    }

    /// Records a failed attempt, to be retried after `retry_in` when it is `Some`, and
    /// logs it as the rules above say.
    pub fn failed(&mut self, err: &SinkError, retry_in: Option<Duration>) {
        let now = Instant::now();
        let what = err.to_string();
        let endpoint = &self.endpoint;
        let retry_in_ms = retry_in.map(|d| d.as_millis() as u64);
        let operator = needs_operator(err);
        match &mut self.episode {
            Some(episode) if episode.what == what => {
                episode.attempts += 1;
                if now.duration_since(episode.reminded) < REMINDER {
                    debug!(endpoint = %endpoint, retry_in_ms, error = %err, "alert delivery failed again");
                    return;
                }
                episode.reminded = now;
                let (attempts, failing_for_mins) =
                    (episode.attempts, now.duration_since(episode.since).as_secs() / 60);
                if operator {
                    error!(endpoint = %endpoint, attempts, failing_for_mins, retry_in_ms, error = %err, "alert delivery still failing");
                } else {
                    warn!(endpoint = %endpoint, attempts, failing_for_mins, retry_in_ms, error = %err, "alert delivery still failing");
                }
            }
            _ => {
                if operator {
                    error!(endpoint = %endpoint, retry_in_ms, error = %err, "alert delivery failing");
                } else {
                    warn!(endpoint = %endpoint, retry_in_ms, error = %err, "alert delivery failing");
                }
                self.episode = Some(Episode { what, since: now, attempts: 1, reminded: now });
            }
        }
    }

    /// Records the last attempt of an alert that is given up on: a problem not told yet
    /// is told (the sink thread then logs the alert as not delivered).
    pub fn gave_up(&mut self, err: &SinkError) {
        if self.episode.as_ref().is_none_or(|e| e.what != err.to_string()) {
            self.failed(err, None);
        } else if let Some(episode) = &mut self.episode {
            episode.attempts += 1;
        }
    }

    /// Records a delivery: ends the problem, saying so.
    pub fn recovered(&mut self) {
        if let Some(episode) = self.episode.take() {
            info!(endpoint = %self.endpoint, failed_attempts = episode.attempts, "alert delivery works again");
        }
    }

    /// Whether a problem is being reported (for tests).
    #[cfg(test)]
    fn in_trouble(&self) -> Option<u32> {
        self.episode.as_ref().map(|e| e.attempts)
    }
}

/// Whether only a person can fix `err`, rather than time.
fn needs_operator(err: &SinkError) -> bool {
    match err {
        SinkError::SmtpConnect { .. } | SinkError::Request(_) => false,
        SinkError::SmtpRefused { transient, .. } => !transient,
        SinkError::Status { .. } => !err.is_retriable(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_login() -> SinkError {
        SinkError::SmtpLogin {
            username: "ruaflow".into(),
            server: "smtp.example.com:587".into(),
            reason: "535 5.7.8 Authentication credentials invalid".into(),
        }
    }

    #[test]
    fn one_problem_is_one_episode_until_a_delivery() {
        let mut trouble = Trouble::new("email smtp.example.com:587".into());
        trouble.failed(&refused_login(), Some(Duration::from_millis(200)));
        trouble.failed(&refused_login(), Some(Duration::from_millis(400)));
        trouble.gave_up(&refused_login());
        assert_eq!(trouble.in_trouble(), Some(3), "one episode, three attempts");
        let unreachable =
            SinkError::SmtpConnect { server: "smtp.example.com:587".into(), reason: "refused".into() };
        trouble.gave_up(&unreachable);
        assert_eq!(trouble.in_trouble(), Some(1), "another problem, another episode");
        trouble.recovered();
        assert_eq!(trouble.in_trouble(), None);
    }

    #[test]
    fn only_time_fixes_network_trouble() {
        assert!(needs_operator(&refused_login()));
        assert!(!needs_operator(&SinkError::SmtpConnect { server: "s".into(), reason: "timed out".into() }));
        let later =
            SinkError::SmtpRefused { server: "s".into(), reason: "451 try later".into(), transient: true };
        assert!(!needs_operator(&later));
        let never = SinkError::SmtpRefused {
            server: "s".into(),
            reason: "550 no such user".into(),
            transient: false,
        };
        assert!(needs_operator(&never));
    }
}
