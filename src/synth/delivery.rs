//! Delivery: which window each report covers and when it reaches the mailbox.
//!
//! Input: the scenario and a reporter. Output: its [`Delivery`] — the report window
//! (one UTC day, one hour, or several days) and how many days late it sends — and the
//! arrival time of each report. In every scenario but `late-reports`, every reporter
//! sends one report per UTC day a few hours after the day ends. In `late-reports`,
//! Google sends a day late and Microsoft two (so reports arrive out of order), Yahoo
//! sends hourly reports, and the RFC 9990 reporter one report per three days.

use super::calendar::{day_end, day_start, DAY_SECS};
use super::scenario::Scenario;
use super::world::Style;

/// The time range one report covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// One UTC day.
    Day,
    /// One hour: 24 reports a day.
    Hour,
    /// This many UTC days, aligned on day 0 (the last window may be shorter).
    Days(u32),
}

/// How one reporter delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The window each report covers.
    pub window: Window,
    /// Whole days it sends late, on top of the usual hours after the window ends.
    pub late_days: u32,
}

impl Delivery {
    const ON_TIME: Delivery = Delivery { window: Window::Day, late_days: 0 };

    /// How reporter `r` (of style `style`) delivers in `scenario`.
    pub fn of(scenario: Scenario, style: Style) -> Self {
        if scenario != Scenario::LateReports {
            return Self::ON_TIME;
        }
        match style {
            Style::Google => Delivery { late_days: 1, ..Self::ON_TIME },
            Style::Microsoft => Delivery { late_days: 2, ..Self::ON_TIME },
            Style::Yahoo => Delivery { window: Window::Hour, late_days: 0 },
            Style::Rfc9990 => Delivery { window: Window::Days(3), late_days: 0 },
            _ => Self::ON_TIME,
        }
    }

    /// The report windows `(begin, end)` (unix seconds, inclusive) that end on report
    /// day `day` of a `days`-day run: the reports to write once `day` is over.
    pub fn windows_ending(self, day: u32, days: u32) -> Vec<(u64, u64)> {
        match self.window {
            Window::Day => vec![(day_start(day), day_end(day))],
            Window::Hour => {
                (0..24).map(|h| (day_start(day) + h * 3_600, day_start(day) + h * 3_600 + 3_599)).collect()
            }
            Window::Days(n) => {
                let first = day - day % n;
                if day + 1 == days || day % n == n - 1 {
                    vec![(day_start(first), day_end(day))]
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// When the report for the window ending at `end` reaches the mailbox: daily and
    /// multi-day reports a few hours after the window (by reporter `r`), hourly ones ten
    /// minutes after, plus the days late.
    pub fn arrival(self, r: usize, end: u64) -> u64 {
        let after = match self.window {
            Window::Hour => 600,
            _ => 3_600 * (1 + r as u64 % 6),
        };
        end + 1 + after + u64::from(self.late_days) * DAY_SECS
    }

    /// Arrival of the first report holding mail of report day `day`.
    pub fn first_arrival(self, r: usize, day: u32, days: u32) -> u64 {
        match self.window {
            Window::Day => self.arrival(r, day_end(day)),
            Window::Hour => self.arrival(r, day_start(day) + 3_599),
            Window::Days(n) => {
                let last = (day - day % n + n - 1).min(days.saturating_sub(1));
                self.arrival(r, day_end(last))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_reporters_and_odd_windows() {
        let google = Delivery::of(Scenario::LateReports, Style::Google);
        assert_eq!(google.first_arrival(0, 3, 35) / DAY_SECS, day_start(5) / DAY_SECS, "a day late");
        assert_eq!(
            Delivery::of(Scenario::ReplayFlood, Style::Google).first_arrival(0, 3, 35) / DAY_SECS,
            day_start(4) / DAY_SECS
        );
        let yahoo = Delivery::of(Scenario::LateReports, Style::Yahoo);
        assert_eq!(yahoo.windows_ending(3, 35).len(), 24);
        assert_eq!(yahoo.first_arrival(2, 3, 35) / DAY_SECS, day_start(3) / DAY_SECS, "the same day");
        let isp = Delivery::of(Scenario::LateReports, Style::Rfc9990);
        assert!(isp.windows_ending(3, 35).is_empty());
        assert_eq!(isp.windows_ending(5, 35), vec![(day_start(3), day_end(5))]);
        assert_eq!(
            isp.windows_ending(34, 35),
            vec![(day_start(33), day_end(34))],
            "the last window is short"
        );
        assert_eq!(isp.first_arrival(5, 3, 35) / DAY_SECS, day_start(6) / DAY_SECS);
    }
}
