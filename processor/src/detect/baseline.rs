//! Robust baselines: median and MAD of a signal's daily history, weekday-aware.
//!
//! Input: the stored daily values of a domain's signals ([`History`]). Output: a
//! [`Baseline`] for one day. Invariant: only days strictly before the evaluated day
//! count, so a surge never raises its own baseline.

use std::collections::HashMap;

use super::store::StoredSignal;
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

/// A domain's stored signal values over the trailing window, as read before the day
/// is evaluated.
#[derive(Debug, Clone, Default)]
pub struct History {
    values: HashMap<(String, String), Vec<(i64, f64)>>,
}

impl History {
    /// The history made of these stored values.
    pub fn new(signals: Vec<StoredSignal>) -> Self {
        let mut values: HashMap<(String, String), Vec<(i64, f64)>> = HashMap::new();
        for s in signals {
            values.entry((s.signal, s.subject)).or_default().push((s.day, s.value));
        }
        History { values }
    }

    fn of(&self, signal: &str, subject: &str) -> &[(i64, f64)] {
        self.values.get(&(signal.to_owned(), subject.to_owned())).map_or(&[], Vec::as_slice)
    }

    /// The baseline of `signal` for `day` from the `window_days` before it. Days of the
    /// same kind (weekday or weekend) are used when there are at least `min_days` of
    /// them, all days otherwise. `None` when fewer than `min_days` days have a value.
    pub fn baseline(
        &self,
        signal: &str,
        subject: &str,
        day: i64,
        window_days: i64,
        min_days: usize,
    ) -> Option<Baseline> {
        let rows: Vec<(i64, f64)> = self
            .of(signal, subject)
            .iter()
            .copied()
            .filter(|(d, _)| *d < day && *d >= day - window_days * DAY)
            .collect();
        let same_kind: Vec<f64> =
            rows.iter().filter(|(d, _)| is_weekend(*d) == is_weekend(day)).map(|(_, v)| *v).collect();
        let values =
            if same_kind.len() >= min_days { same_kind } else { rows.iter().map(|(_, v)| *v).collect() };
        robust(&values).filter(|b| b.days >= min_days)
    }

    /// Days before `day` (within `window_days`) that have a value of `signal`.
    pub fn days_before(&self, signal: &str, subject: &str, day: i64, window_days: i64) -> usize {
        self.of(signal, subject).iter().filter(|(d, _)| *d < day && *d >= day - window_days * DAY).count()
    }

    /// The subjects of `signal` with a value before `day` (within `window_days`).
    pub fn subjects_before(&self, signal: &str, day: i64, window_days: i64) -> Vec<String> {
        let mut out: Vec<String> = self
            .values
            .iter()
            .filter(|((s, _), v)| {
                s == signal && v.iter().any(|(d, _)| *d < day && *d >= day - window_days * DAY)
            })
            .map(|((_, subject), _)| subject.clone())
            .collect();
        out.sort();
        out
    }
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
