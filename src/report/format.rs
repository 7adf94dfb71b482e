//! Number, percentage, date and text formatting shared by the terminal and HTML views.
//!
//! Input: counts, unix seconds and untrusted strings from the store. Output: display
//! strings. Owns the rule that report data never reaches a terminal or a page raw:
//! [`terminal_safe`] and [`html`] are the only ways strings leave this module's users.

use ruaflow_schema::time::civil_from_days;

/// Seconds in a day.
pub const DAY: i64 = 86_400;

pub use ruaflow_schema::text::thousands;

/// `part` as a percentage of `whole`, rounded to 0.1; `None` when `whole` is 0.
pub fn pct(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 * 1000.0 / whole as f64).round() / 10.0)
}

/// A percentage with one decimal (`95.2%`), or `–` when there is nothing to divide.
pub fn pct_text(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}%"))
}

/// `part` as a percentage of `whole`, unrounded, and as text with as many decimals as
/// it takes to show its first significant digit (at least one): `12.5%`, `0.3%`,
/// `0.001%` — a share of failures that exist never reads `0.0%`. `(None, "–")` when
/// `whole` is 0.
pub fn share(part: u64, whole: u64) -> (Option<f64>, String) {
    if whole == 0 {
        return (None, "–".to_owned());
    }
    let value = part as f64 * 100.0 / whole as f64;
    if part == 0 {
        return (Some(0.0), "0%".to_owned());
    }
    let decimals = if value >= 0.1 { 1 } else { ((-value.log10()).ceil() as usize).clamp(1, 17) };
    let text = format!("{value:.decimals$}");
    let text = if decimals > 1 { text.trim_end_matches('0').to_owned() } else { text };
    (Some(value), format!("{text}%"))
}

/// An alert figure (observed or baseline): whole numbers with separators, a fraction
/// (a rate such as 0.052) with two significant digits, others with one decimal.
pub fn figure(value: f64) -> String {
    if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value < 1e18 {
        thousands(value as u64)
    } else if value.is_finite() && value != 0.0 && value.abs() < 1.0 {
        let decimals = (-value.abs().log10()).ceil() as usize + 1;
        let text = format!("{value:.decimals$}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        format!("{value:.1}")
    }
}

/// The UTC date of a unix second, `YYYY-MM-DD`.
pub fn date(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

/// A unix second as `YYYY-MM-DD HH:MM` (UTC).
pub fn datetime(secs: i64) -> String {
    let rem = secs.rem_euclid(DAY);
    format!("{} {:02}:{:02}", date(secs), rem / 3600, rem % 3600 / 60)
}

/// A short axis label for a day: `Jun 13`, or `2024-06-13` when `with_year`.
pub fn day_label(secs: i64, with_year: bool) -> String {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    if with_year {
        return date(secs);
    }
    let (_, m, d) = civil_from_days(secs.div_euclid(DAY));
    format!("{} {d}", MONTHS[(m as usize).saturating_sub(1) % 12])
}

/// Untrusted text made safe for a terminal: control characters (which could move the
/// cursor or change colours: ESC, CR, BEL…) become `�`.
pub fn terminal_safe(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect()
}

/// Untrusted text made safe for HTML and SVG, in text and in quoted attributes alike:
/// `& < > " '` become entities and control characters (other than tab and newline)
/// become `�`.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `s`, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(8_559), "8,559");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }

    #[test]
    fn percentages_round_to_one_decimal() {
        assert_eq!(pct(1, 3), Some(33.3));
        assert_eq!(pct(2, 3), Some(66.7));
        assert_eq!(pct(0, 0), None);
        assert_eq!(pct_text(pct(1, 8)), "12.5%");
        assert_eq!(pct_text(None), "–");
    }

    #[test]
    fn alert_figures_keep_small_rates() {
        assert_eq!(figure(31_250.0), "31,250");
        assert_eq!(figure(0.052), "0.052");
        assert_eq!(figure(0.0005), "0.0005");
        assert_eq!(figure(2.26), "2.3");
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(date(1_718_236_800), "2024-06-13");
        assert_eq!(datetime(1_718_236_800 + 3_600 + 120), "2024-06-13 01:02");
        assert_eq!(day_label(1_718_236_800, false), "Jun 13");
    }

    #[test]
    fn html_escapes_every_special_character() {
        assert_eq!(html(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(html("a\u{1b}[31mb"), "a\u{fffd}[31mb");
    }

    #[test]
    fn terminal_text_loses_escape_sequences() {
        assert_eq!(terminal_safe("x\u{1b}[2Jy\r"), "x\u{fffd}[2Jy\u{fffd}");
    }

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }

    #[test]
    fn a_share_of_existing_failures_is_never_zero() {
        assert_eq!(share(1, 100_000).1, "0.001%");
        assert_eq!(share(15, 1_000_000).1, "0.002%");
        assert_eq!(share(1, 3).1, "33.3%");
        assert_eq!(share(1, 1000).1, "0.1%");
        assert_eq!(share(1, 1001).1, "0.1%");
        assert_eq!(share(0, 10).1, "0%");
        assert_eq!(share(1, u64::MAX).1.trim_end_matches('%').parse::<f64>().map(|v| v > 0.0), Ok(true));
        assert_eq!(share(3, 0), (None, "–".to_owned()));
    }
}
