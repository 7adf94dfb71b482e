//! Date ranges of the commands that read the store: `--since DATE`, `--until DATE` and
//! `--days N`, one parser and one meaning for `report`, `alerts`, `sources`, `export`
//! and every later reader.
//!
//! Input: the flags as typed, and (when `--days` needs it) the newest report day in the
//! data. Output: a [`DayRange`], an inclusive span of UTC report days. Rules:
//! - DATE is `YYYY-MM-DD` (UTC); both ends are included.
//! - `--days N` is N calendar days ending at `--until`, or else at the newest report
//!   day in the data (never the wall clock, so an archive still shows its last week);
//!   it cannot be combined with `--since`.
//! - A report belongs to a range by its report day (the UTC day of the middle of its
//!   date range); an alert when its window overlaps the range.

use clap::Args;

use ruaflow_schema::time::{civil_from_days, days_from_civil};

/// Seconds in a day.
const DAY: i64 = 86_400;

/// The range flags, flattened into every command that reads the store.
#[derive(Debug, Clone, Default, Args)]
pub struct RangeArgs {
    /// Only report days from DATE on (YYYY-MM-DD, UTC, included).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub since: Option<i64>,
    /// Only report days up to DATE (YYYY-MM-DD, UTC, included).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub until: Option<i64>,
    /// Only the N calendar days ending at --until, or at the newest report day in the
    /// data (not the clock: an archive still shows its last N days).
    #[arg(long, value_name = "N", conflicts_with = "since", value_parser = clap::value_parser!(u32).range(1..))]
    pub days: Option<u32>,
}

/// An inclusive span of report days (unix seconds of UTC midnights); `None` = open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayRange {
    /// The first day in the range.
    pub first_day: Option<i64>,
    /// The last day in the range.
    pub last_day: Option<i64>,
}

impl RangeArgs {
    /// The range the flags mean. `newest_day` is asked only for `--days` without
    /// `--until`; it returns the newest report day in the data (`None` when there is
    /// none, and then the range is open: there is nothing to show either way).
    pub fn resolve<E>(&self, newest_day: impl FnOnce() -> Result<Option<i64>, E>) -> anyhow::Result<DayRange>
    where
        E: Into<anyhow::Error>,
    {
        let (first_day, last_day) = match self.days {
            Some(n) => {
                let last = match self.until {
                    Some(until) => Some(until),
                    None => newest_day().map_err(Into::into)?.map(|d| d.div_euclid(DAY) * DAY),
                };
                (last.map(|l| l - (i64::from(n) - 1) * DAY), last)
            }
            None => (self.since, self.until),
        };
        if let (Some(first), Some(last)) = (first_day, last_day) {
            if first > last {
                anyhow::bail!("--since {} is after --until {}", format_date(first), format_date(last));
            }
        }
        Ok(DayRange { first_day, last_day })
    }
}

impl DayRange {
    /// Everything.
    pub const ALL: DayRange = DayRange { first_day: None, last_day: None };

    /// The first second in the range (`i64::MIN` when open), for SQL bounds.
    pub fn lo(&self) -> i64 {
        self.first_day.unwrap_or(i64::MIN)
    }

    /// The last second in the range (`i64::MAX` when open), for SQL bounds: a report
    /// day `d` is in the range when `lo() <= d <= hi()`, a time span when it overlaps.
    pub fn hi(&self) -> i64 {
        self.last_day.map_or(i64::MAX, |d| d + DAY - 1)
    }

    /// The first day as `YYYY-MM-DD`.
    pub fn since_date(&self) -> Option<String> {
        self.first_day.map(format_date)
    }

    /// The last day as `YYYY-MM-DD`.
    pub fn until_date(&self) -> Option<String> {
        self.last_day.map(format_date)
    }
}

/// Parses `YYYY-MM-DD` (UTC) into the unix second of that midnight.
pub fn parse_date(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not a date: expected YYYY-MM-DD (UTC), e.g. 2026-09-01");
    let parts: Vec<&str> = text.trim().split('-').collect();
    let [y, m, d] = parts.as_slice() else { return Err(bad()) };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit()).then(|| s.parse::<u32>().ok()).flatten();
    let (Some(year), Some(month), Some(day)) = (digits(y), digits(m), digits(d)) else { return Err(bad()) };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    let days = days_from_civil(i64::from(year), month, day);
    // 2026-02-30 would silently become March 2nd: refuse what does not round-trip.
    if civil_from_days(days) != (i64::from(year), month, day) {
        return Err(format!("{text:?} is not a day of the calendar"));
    }
    Ok(days * DAY)
}

fn format_date(secs: i64) -> String {
    ruaflow_schema::time::format_date(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEP1: i64 = 1_788_220_800; // 2026-09-01

    fn args(since: Option<&str>, until: Option<&str>, days: Option<u32>) -> RangeArgs {
        RangeArgs {
            since: since.map(|s| parse_date(s).expect("date")),
            until: until.map(|s| parse_date(s).expect("date")),
            days,
        }
    }

    fn no_data() -> Result<Option<i64>, std::convert::Infallible> {
        Ok(None)
    }

    fn contains(r: &DayRange, day: i64) -> bool {
        (r.lo()..=r.hi()).contains(&day)
    }

    #[test]
    fn dates_parse_strictly() {
        assert_eq!(parse_date("2026-09-01"), Ok(SEP1));
        assert_eq!(parse_date("1970-01-01"), Ok(0));
        for bad in
            ["2026-9-1", "2026-02-30", "2026-13-01", "yesterday", "2026-09-01T00:00:00Z", "", "+026-09-01"]
        {
            assert!(parse_date(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn days_count_calendar_days_back_from_the_newest_report_day() {
        // The newest report is stamped mid-day; the range ends on its whole day.
        let newest = || Ok::<_, std::convert::Infallible>(Some(SEP1 + 12 * 3600));
        let r = args(None, None, Some(7)).resolve(newest).expect("range");
        assert_eq!(r.first_day, Some(SEP1 - 6 * DAY));
        assert_eq!(r.last_day, Some(SEP1));
        assert!(contains(&r, SEP1) && contains(&r, SEP1 - 6 * DAY) && !contains(&r, SEP1 - 7 * DAY));
        assert_eq!(r.hi(), SEP1 + DAY - 1);
        // With --until, the N days end there and the data is not asked.
        let r = args(None, Some("2026-09-01"), Some(1))
            .resolve(|| -> Result<Option<i64>, std::io::Error> { panic!("not asked") })
            .expect("range");
        assert_eq!((r.first_day, r.last_day), (Some(SEP1), Some(SEP1)));
    }

    #[test]
    fn since_and_until_are_inclusive_and_ordered() {
        let r = args(Some("2026-09-01"), Some("2026-09-03"), None).resolve(no_data).expect("range");
        assert_eq!(
            (r.since_date().as_deref(), r.until_date().as_deref()),
            (Some("2026-09-01"), Some("2026-09-03"))
        );
        assert!(contains(&r, SEP1 + 2 * DAY) && !contains(&r, SEP1 + 3 * DAY));
        assert!(args(Some("2026-09-03"), Some("2026-09-01"), None).resolve(no_data).is_err());
        let open = args(None, None, None).resolve(no_data).expect("range");
        assert_eq!(open, DayRange::ALL);
        assert_eq!((open.lo(), open.hi()), (i64::MIN, i64::MAX));
        // --days on an empty store: nothing to anchor on, so everything (which is nothing).
        assert_eq!(args(None, None, Some(3)).resolve(no_data).expect("range"), DayRange::ALL);
    }
}
