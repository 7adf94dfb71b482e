//! Robust baselines: median and MAD of a signal's daily history, weekday-aware.
//!
//! Input: the stored daily values of one signal (`detector_signals`). Output: a
//! [`Baseline`] for one day. Invariant: only days strictly before the evaluated day
//! count, so a surge never raises its own baseline.

use rusqlite::{params, Connection};

use crate::normalize::DAY;

/// A robust summary of a signal's trailing history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    /// Median of the history.
    pub median: f64,
    /// Median absolute deviation, scaled (×1.4826) to estimate a standard deviation.
    pub mad: f64,
    /// How many days it is made of.
    pub days: usize,
}

impl Baseline {
    /// The smallest value that counts as "far above": `ratio` times the median, or the
    /// median plus `k` robust deviations, whichever is larger.
    pub fn threshold(&self, ratio: f64, k: f64) -> f64 {
        (self.median * ratio).max(self.median + k * self.mad)
    }
}

/// True for Saturday and Sunday (1970-01-01 was a Thursday).
pub fn is_weekend(day: i64) -> bool {
    let weekday = (day.div_euclid(DAY) + 3).rem_euclid(7); // 0 = Monday
    weekday >= 5
}

/// Stores the value of `signal` for (domain, subject, day), replacing an earlier one.
pub fn record(
    conn: &Connection,
    domain: &str,
    signal: &str,
    subject: &str,
    day: i64,
    value: f64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO detector_signals (domain, signal, subject, day, value) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (domain, signal, subject, day) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![domain, signal, subject, day, value])?;
    Ok(())
}

/// The baseline of `signal` for `day` from the `window_days` before it. Days of the same
/// kind (weekday or weekend) are used when there are at least `min_days` of them, all
/// days otherwise. `None` when fewer than `min_days` days have a value.
pub fn of(
    conn: &Connection,
    domain: &str,
    signal: &str,
    subject: &str,
    day: i64,
    window_days: i64,
    min_days: usize,
) -> rusqlite::Result<Option<Baseline>> {
    let mut stmt = conn.prepare_cached(
        "SELECT day, value FROM detector_signals
         WHERE domain = ?1 AND signal = ?2 AND subject = ?3 AND day < ?4 AND day >= ?5",
    )?;
    let rows: Vec<(i64, f64)> = stmt
        .query_map(params![domain, signal, subject, day, day - window_days * DAY], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let same_kind: Vec<f64> =
        rows.iter().filter(|(d, _)| is_weekend(*d) == is_weekend(day)).map(|(_, v)| *v).collect();
    let values = if same_kind.len() >= min_days { same_kind } else { rows.iter().map(|(_, v)| *v).collect() };
    Ok(robust(&values).filter(|b| b.days >= min_days))
}

/// Median and scaled MAD of a sample; `None` when it is empty.
pub fn robust(values: &[f64]) -> Option<Baseline> {
    if values.is_empty() {
        return None;
    }
    let median = median(values.to_vec());
    let deviations: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
    Some(Baseline { median, mad: 1.4826 * self::median(deviations), days: values.len() })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robust_statistics_ignore_a_few_outliers() {
        let b = robust(&[10.0, 12.0, 11.0, 9.0, 10.0, 500.0, 11.0]).expect("baseline");
        assert_eq!(b.median, 11.0);
        assert!(b.mad < 3.0, "{b:?}");
        assert_eq!(b.threshold(5.0, 6.0), 55.0);
        assert!(robust(&[]).is_none());
    }

    #[test]
    fn weekends() {
        assert!(is_weekend(1_788_652_800), "2026-09-06 is a Sunday");
        assert!(!is_weekend(1_788_739_200), "2026-09-07 is a Monday");
    }
}
