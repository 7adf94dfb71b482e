//! Attempts with exponential backoff, shared by every endpoint.
//!
//! Input: one attempt (a closure), the number of retries, and a `pause` that sleeps
//! unless shutdown begins. Output: the first success, or the error that made us give up.
//! Invariant: only [`SinkError::is_retriable`] errors are retried, at most `retries`
//! times, waiting [`backoff`] between attempts; a permanent error is returned at once.

use std::time::Duration;

use super::SinkError;

/// The delay before the first retry; it doubles after each retry.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// The longest delay between two attempts, whatever `retries` is.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Runs `attempt` until it succeeds, fails permanently, or `retries` retries are spent.
/// After each failure that will be retried it calls `failed(error, attempt number,
/// delay)` (for the log), then `pause(delay)`, which returns `false` to give up early
/// (shutdown).
pub(crate) fn with_retries(
    retries: u32,
    mut attempt: impl FnMut() -> Result<(), SinkError>,
    mut failed: impl FnMut(&SinkError, u32, Duration),
    mut pause: impl FnMut(Duration) -> bool,
) -> Result<(), SinkError> {
    let mut tries = 0;
    loop {
        match attempt() {
            Ok(()) => return Ok(()),
            Err(err) if err.is_retriable() && tries < retries => {
                let delay = backoff(tries);
                tries += 1;
                failed(&err, tries, delay);
                if !pause(delay) {
                    return Err(err);
                }
            }
            Err(err) => return Err(err),
        }
    }
}

/// The delay before retry number `attempt + 1`: 200 ms, 400 ms, 800 ms, … up to 30 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(2u32.saturating_pow(attempt)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_200_ms_and_is_capped() {
        let delays: Vec<u128> = (0..4).map(|a| backoff(a).as_millis()).collect();
        assert_eq!(delays, [200, 400, 800, 1600]);
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn retriable_errors_are_retried_permanent_ones_are_not() {
        let unreachable = || SinkError::SmtpConnect { server: "s:587".into(), reason: "refused".into() };
        let (mut calls, mut pauses) = (0, Vec::new());
        let result = with_retries(
            2,
            || {
                calls += 1;
                Err(unreachable())
            },
            |_, _, _| {},
            |d| {
                pauses.push(d.as_millis());
                true
            },
        );
        assert!(result.is_err());
        assert_eq!((calls, pauses), (3, vec![200, 400]), "first try and two retries");

        let mut calls = 0;
        let tls = with_retries(
            5,
            || {
                calls += 1;
                Err(SinkError::SmtpTls { server: "s:587".into(), reason: "unknown issuer".into() })
            },
            |_, _, _| {},
            |_| true,
        );
        assert!(matches!(tls, Err(SinkError::SmtpTls { .. })));
        assert_eq!(calls, 1, "a TLS failure is not retried");

        let mut calls = 0;
        let stopped = with_retries(
            5,
            || {
                calls += 1;
                Err(unreachable())
            },
            |_, _, _| {},
            |_| false,
        );
        assert!(stopped.is_err());
        assert_eq!(calls, 1, "shutdown ends the retries");
    }
}
