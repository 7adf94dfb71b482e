//! The generator's fixed calendar: report days, weekdays and UTC date formatting.
//!
//! Nothing here reads the clock. Report day 0 starts at [`FIRST_DAY`] (2026-09-01 00:00 UTC,
//! a Tuesday); a report day is one whole UTC day, `begin ..= begin + 86399`, the window of
//! Google's and Yahoo's daily reports (other windows: `delivery`).

/// Unix time of 2026-09-01 00:00:00 UTC, the start of report day 0.
pub const FIRST_DAY: u64 = 1_788_220_800;

/// Seconds in a report day.
pub const DAY_SECS: u64 = 86_400;

/// Unix time of the start of report day `day`.
pub fn day_start(day: u32) -> u64 {
    FIRST_DAY + u64::from(day) * DAY_SECS
}

/// Unix time of the last second of report day `day` (the `<end>` of its reports).
pub fn day_end(day: u32) -> u64 {
    day_start(day) + DAY_SECS - 1
}

/// Whether report day `day` is a Saturday or a Sunday (day 0 is a Tuesday).
pub fn is_weekend(day: u32) -> bool {
    // Monday = 0: day 0 is a Tuesday, so its weekday index is 1.
    matches!((day + 1) % 7, 5 | 6)
}

/// A UTC civil date and time, as `(year, month, day, hour, minute, second)`.
pub type Civil = (i64, u32, u32, u32, u32, u32);

/// Converts unix seconds to a UTC civil date and time (Howard Hinnant's `civil_from_days`).
pub fn civil(unix: u64) -> Civil {
    let days = (unix / DAY_SECS) as i64;
    let secs = (unix % DAY_SECS) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs / 3600, secs / 60 % 60, secs % 60)
}

/// RFC 3339 UTC timestamp with a `Z` suffix, as TLSRPT `date-range` uses:
/// `2026-09-01T00:00:00Z`.
pub fn rfc3339(unix: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_day_is_tuesday_2026_09_01() {
        assert_eq!(rfc3339(FIRST_DAY), "2026-09-01T00:00:00Z");
        assert_eq!(rfc3339(day_end(29)), "2026-09-30T23:59:59Z");
        assert_eq!(civil(day_start(122)), (2027, 1, 1, 0, 0, 0));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        // Sat 2026-09-05 and Sun 2026-09-06 are days 4 and 5.
        let weekend: Vec<u32> = (0..8).filter(|&d| is_weekend(d)).collect();
        assert_eq!(weekend, [4, 5]);
    }
}
