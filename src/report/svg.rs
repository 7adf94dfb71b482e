//! Inline SVG charts for the HTML page: stacked bars per day, horizontal bars.
//!
//! Input: numbers and labels (untrusted labels included). Output: `<svg>` markup that
//! scales to its container (`viewBox`, no fixed size), with a native `<title>` tooltip on
//! every bar, so the page needs no script. Every label goes through [`html`] escaping.

use std::fmt::Write as _;

use super::format::{day_label, html, thousands, truncate, DAY};

/// Width of every chart's coordinate system; the page scales it to fit.
const WIDTH: f64 = 960.0;

/// One stacked series: its name (legend, tooltips) and colour.
#[derive(Debug, Clone)]
pub struct Series {
    /// Shown in the legend and tooltips (untrusted: escaped when drawn).
    pub name: String,
    /// A CSS colour.
    pub color: &'static str,
}

/// A vertical marker on a day axis (an alert).
#[derive(Debug, Clone)]
pub struct Marker {
    /// The day it marks (unix seconds of a midnight).
    pub day: i64,
    /// A CSS colour.
    pub color: &'static str,
    /// Tooltip text (untrusted: escaped when drawn).
    pub label: String,
}

/// Stacked bars, one bar per day.
#[derive(Debug, Clone, Default)]
pub struct DayStack {
    /// The x axis, ascending days.
    pub days: Vec<i64>,
    /// The stacked series, bottom first.
    pub series: Vec<Series>,
    /// `values[day][series]`.
    pub values: Vec<Vec<u64>>,
    /// Markers drawn over the bars.
    pub markers: Vec<Marker>,
    /// What the values count (tooltips, accessible label).
    pub unit: &'static str,
}

/// A day at least this many times the typical day (the median of the days with
/// volume) is a flood: drawn to scale, it would flatten every other day to nothing.
const FLOOD_RATIO: f64 = 8.0;

/// Where a chart is cut when some days are floods: just above the highest day that is
/// not one (so no ordinary day is cut), or `None` when no day is a flood (or there are
/// too few days to tell).
pub fn flood_cut(chart: &DayStack) -> Option<u64> {
    let mut days: Vec<u64> = chart.values.iter().map(|v| v.iter().sum::<u64>()).filter(|t| *t > 0).collect();
    if days.len() < 5 {
        return None;
    }
    days.sort_unstable();
    let median = days[days.len() / 2] as f64;
    let flood = |t: u64| t as f64 >= FLOOD_RATIO * median;
    let highest_ordinary = days.iter().rev().copied().find(|t| !flood(*t))?;
    flood(days[days.len() - 1]).then(|| highest_ordinary + highest_ordinary / 10)
}

/// Draws a [`DayStack`]; `title` is the accessible name. When some days are floods
/// ([`flood_cut`]), the chart is cut above the ordinary days, so they stay readable: a
/// cut bar ends in a zigzag with its day's total above it, and a small inset above the
/// chart shows every day to one scale.
pub fn day_stack(chart: &DayStack, title: &str) -> String {
    match flood_cut(chart) {
        None => draw_days(chart, title, Layout::MAIN, None),
        Some(cut) => {
            let inset = draw_days(chart, &format!("{title}, to scale"), Layout::INSET, None);
            format!("{inset}{}", draw_days(chart, title, Layout::MAIN, Some(cut)))
        }
    }
}

/// The geometry of a day chart.
#[derive(Debug, Clone, Copy)]
struct Layout {
    height: f64,
    top: f64,
    bottom: f64,
    /// Grid lines, axis labels and markers (the inset has only bars and its top value).
    full: bool,
}

impl Layout {
    const MAIN: Layout = Layout { height: 260.0, top: 26.0, bottom: 30.0, full: true };
    const INSET: Layout = Layout { height: 64.0, top: 14.0, bottom: 4.0, full: false };
}

fn draw_days(chart: &DayStack, title: &str, layout: Layout, cut: Option<u64>) -> String {
    const LEFT: f64 = 56.0;
    const RIGHT: f64 = 12.0;
    /// Room above the plot for the totals of cut bars (above the alert flags).
    const CUT_LABELS: f64 = 16.0;
    /// Widest a bar gets (few days would otherwise draw slabs).
    const MAX_BAR: f64 = 56.0;
    let top_margin = layout.top + if cut.is_some() { CUT_LABELS } else { 0.0 };
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = layout.height - top_margin - layout.bottom;
    let n = chart.days.len().max(1);
    let max = chart.values.iter().map(|v| v.iter().sum::<u64>()).max().unwrap_or(0);
    let (step, top) = nice_scale(cut.unwrap_or(max));
    let y = |v: f64| top_margin + plot_h - v.min(top as f64) / top as f64 * plot_h;

    let mut s = open(WIDTH, layout.height, title);
    if !layout.full {
        s.insert_str(s.len() - 1, r#" data-inset="to scale""#);
    }
    // Grid and y labels (the inset: its top value only).
    let mut tick = if layout.full { 0 } else { top };
    while tick <= top {
        let ty = y(tick as f64);
        if layout.full {
            let _ = write!(
                s,
                r#"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{ty:.1}" y2="{ty:.1}"/>"#,
                WIDTH - RIGHT
            );
        }
        let _ = write!(
            s,
            r#"<text class="ylab" x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT - 8.0,
            ty + 4.0,
            compact(tick)
        );
        tick += step;
    }
    // Bars, cut at the top of the axis.
    let band = plot_w / n as f64;
    let gap = if band >= 4.0 { (band * 0.22).max(band - MAX_BAR) } else { 0.0 };
    let with_year = years_differ(&chart.days);
    for (i, (day, values)) in chart.days.iter().zip(&chart.values).enumerate() {
        let x = LEFT + i as f64 * band + gap / 2.0;
        let w = (band - gap).max(0.5);
        let mut base = 0u64;
        for (series, &v) in chart.series.iter().zip(values) {
            if v == 0 || base >= top {
                base += v;
                continue;
            }
            let (y1, y0) = (y((base + v) as f64), y(base as f64));
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{y1:.1}" width="{w:.1}" height="{:.1}" fill="{}"><title>{} · {}: {} {}</title></rect>"#,
                (y0 - y1).max(0.5),
                series.color,
                day_label(*day, true),
                html(&series.name),
                thousands(v),
                chart.unit
            );
            base += v;
        }
        if cut.is_some() && base > top {
            // A zigzag across the bar's top says it goes on; its total stands above.
            let zy = top_margin + 7.0;
            let _ = write!(
                s,
                r##"<path class="cut" d="M{x:.1} {:.1} l{:.1} -4 l{:.1} 8 l{:.1} -8 l{:.1} 4" fill="none" stroke="#fff" stroke-width="3"><title>{} · {} {} (cut; the inset shows it to scale)</title></path>"##,
                zy + 2.0,
                w / 4.0,
                w / 4.0,
                w / 4.0,
                w / 4.0,
                day_label(*day, true),
                thousands(base),
                chart.unit
            );
            if band >= 24.0 {
                let _ = write!(
                    s,
                    r#"<text class="cutlab" x="{:.1}" y="{:.1}">{}</text>"#,
                    x + w / 2.0,
                    top_margin - 15.0,
                    compact(base)
                );
            }
        }
    }
    if layout.full {
        // X labels, spaced so they never overlap.
        let label_w = if with_year { 84.0 } else { 54.0 };
        let stride = ((label_w / band).ceil() as usize).max(1);
        for (i, day) in chart.days.iter().enumerate().step_by(stride) {
            let cx = LEFT + (i as f64 + 0.5) * band;
            let _ = write!(
                s,
                r#"<text class="xlab" x="{cx:.1}" y="{:.1}">{}</text>"#,
                layout.height - layout.bottom + 18.0,
                day_label(*day, with_year)
            );
        }
    }
    let _ = write!(
        s,
        r#"<line class="axis" x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}"/>"#,
        WIDTH - RIGHT,
        top_margin + plot_h,
        top_margin + plot_h
    );
    if layout.full {
        // Markers: a dashed rule through the day and a flag above the plot.
        for m in &chart.markers {
            let i = chart.days.iter().position(|d| *d >= m.day).unwrap_or(n - 1);
            let cx = LEFT + (i as f64 + 0.5) * band;
            let _ = write!(
                s,
                r#"<g class="marker"><title>{}</title><line x1="{cx:.1}" x2="{cx:.1}" y1="{:.1}" y2="{:.1}" stroke="{c}" stroke-width="1.5" stroke-dasharray="4 3"/><path d="M{:.1} {:.1} l6 -9 h-12 z" fill="{c}"/></g>"#,
                html(&m.label),
                top_margin - 4.0,
                top_margin + plot_h,
                cx,
                top_margin - 3.0,
                c = m.color
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// One row of a horizontal bar chart.
#[derive(Debug, Clone)]
pub struct HBar {
    /// Main label (untrusted).
    pub label: String,
    /// Secondary label, drawn lighter (untrusted; may be empty).
    pub note: String,
    /// Values per series, left to right.
    pub parts: Vec<u64>,
}

/// Draws horizontal stacked bars, one row per [`HBar`], largest value first as given.
pub fn hbars(rows: &[HBar], series: &[Series], unit: &str, title: &str) -> String {
    /// Narrower than the day charts: these sit in half-width cards, and the text must
    /// stay the same size once scaled.
    const WIDTH: f64 = 540.0;
    const ROW: f64 = 24.0;
    const LABEL_W: f64 = 250.0;
    const VALUE_W: f64 = 56.0;
    const LABEL_CHARS: usize = 36;
    let height = ROW * rows.len() as f64 + 8.0;
    let max = rows.iter().map(|r| r.parts.iter().sum::<u64>()).max().unwrap_or(0).max(1);
    let bar_w = WIDTH - LABEL_W - VALUE_W;
    let mut s = open(WIDTH, height, title);
    for (i, row) in rows.iter().enumerate() {
        let top = 4.0 + i as f64 * ROW;
        // Anchored at the left edge so a long label is cut by `truncate`, never by the
        // edge of the drawing; ~6.5 units per character at 12px.
        let label = truncate(&row.label, LABEL_CHARS);
        let note = truncate(&row.note, LABEL_CHARS.saturating_sub(label.chars().count() + 1));
        let _ = write!(
            s,
            r#"<text class="hlab" x="0" y="{:.1}">{}<tspan class="note">{}{}</tspan></text>"#,
            top + ROW / 2.0 + 4.0,
            html(&label),
            if note.is_empty() { "" } else { " " },
            html(&note)
        );
        let mut x = LABEL_W;
        let total: u64 = row.parts.iter().sum();
        for (ser, &v) in series.iter().zip(&row.parts) {
            if v == 0 {
                continue;
            }
            let w = (v as f64 / max as f64 * bar_w).max(1.0);
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{}"><title>{}: {} {} {}</title></rect>"#,
                top + 5.0,
                ROW - 10.0,
                ser.color,
                html(&row.label),
                html(&ser.name),
                thousands(v),
                html(unit)
            );
            x += w;
        }
        let _ = write!(
            s,
            r#"<text class="hval" x="{:.1}" y="{:.1}">{}</text>"#,
            x + 6.0,
            top + ROW / 2.0 + 4.0,
            thousands(total)
        );
    }
    s.push_str("</svg>");
    s
}

/// An HTML legend for `series`.
pub fn legend(series: &[Series]) -> String {
    let mut s = String::from(r#"<div class="legend">"#);
    for ser in series {
        let _ = write!(s, r#"<span><i style="background:{}"></i>{}</span>"#, ser.color, html(&ser.name));
    }
    s.push_str("</div>");
    s
}

/// The axis for day charts: the given days plus `extra` (alert days), and every day
/// between them when the span is short enough for one bar per calendar day (so gaps
/// show as gaps); a long sparse span (an old archive) keeps only the days with data.
pub fn day_axis(days: impl IntoIterator<Item = i64>, extra: impl IntoIterator<Item = i64>) -> Vec<i64> {
    /// Longest span drawn as consecutive calendar days.
    const MAX_CONTIGUOUS_DAYS: i64 = 180;
    let mut all: Vec<i64> = days.into_iter().chain(extra).map(|d| d.div_euclid(DAY) * DAY).collect();
    all.sort_unstable();
    all.dedup();
    match (all.first(), all.last()) {
        (Some(&first), Some(&last)) if (last - first) / DAY < MAX_CONTIGUOUS_DAYS => {
            (0..=(last - first) / DAY).map(|i| first + i * DAY).collect()
        }
        _ => all,
    }
}

fn open(width: f64, height: f64, title: &str) -> String {
    format!(
        r#"<svg class="chart" viewBox="0 0 {width} {height:.0}" preserveAspectRatio="xMinYMin meet" role="img" aria-label="{}">"#,
        html(title)
    )
}

/// A y scale for values up to `max`: (tick step, top of the axis), with 3–6 ticks at
/// 1, 2 or 5 × a power of ten.
fn nice_scale(max: u64) -> (u64, u64) {
    if max == 0 {
        return (1, 1);
    }
    let raw = (max as f64 / 4.0).max(1.0);
    let magnitude = 10f64.powf(raw.log10().floor());
    let step =
        [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude);
    let step = (step as u64).max(1);
    (step, max.div_ceil(step) * step)
}

/// `12500` → `12.5k`, `3000000` → `3M`: short axis labels.
fn compact(v: u64) -> String {
    let short = |x: f64, suffix: &str| {
        let text = format!("{x:.1}");
        format!("{}{suffix}", text.trim_end_matches(".0"))
    };
    match v {
        0..=9_999 => thousands(v),
        10_000..=999_999 => short(v as f64 / 1e3, "k"),
        _ => short(v as f64 / 1e6, "M"),
    }
}

fn years_differ(days: &[i64]) -> bool {
    match (days.first(), days.last()) {
        (Some(a), Some(b)) => day_label(*a, true)[..4] != day_label(*b, true)[..4],
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_are_round() {
        assert_eq!(nice_scale(0), (1, 1));
        assert_eq!(nice_scale(3), (1, 3));
        assert_eq!(nice_scale(97), (50, 100));
        assert_eq!(nice_scale(8_523), (5_000, 10_000));
        assert_eq!(nice_scale(1_200), (500, 1_500));
    }

    #[test]
    fn compact_labels() {
        assert_eq!(compact(950), "950");
        assert_eq!(compact(12_500), "12.5k");
        assert_eq!(compact(3_000_000), "3M");
    }

    #[test]
    fn short_spans_are_contiguous_long_ones_sparse() {
        assert_eq!(day_axis([0, 3 * DAY], []), vec![0, DAY, 2 * DAY, 3 * DAY]);
        assert_eq!(day_axis([0], [1000 * DAY + 5]), vec![0, 1000 * DAY]);
    }

    /// The heights of the bars of `svg` per day label, summed over the stack.
    fn bar_heights(svg: &str) -> Vec<f64> {
        let mut heights: Vec<(String, f64)> = Vec::new();
        for rect in svg.split("<rect ").skip(1) {
            let attr = |name: &str| -> f64 {
                let at = rect.find(&format!(" {name}=\"")).map(|i| i + name.len() + 3).expect("attribute");
                rect[at..].split('"').next().expect("value").parse().expect("number")
            };
            let day =
                rect.split("<title>").nth(1).and_then(|t| t.split(" · ").next()).expect("title").to_owned();
            match heights.last_mut() {
                Some((d, h)) if *d == day => *h += attr("height"),
                _ => heights.push((day, attr("height"))),
            }
        }
        heights.into_iter().map(|(_, h)| h).collect()
    }

    fn stack(totals: &[u64]) -> DayStack {
        DayStack {
            days: (0..totals.len() as i64).map(|d| d * DAY).collect(),
            series: vec![
                Series { name: "a".into(), color: "#000" },
                Series { name: "b".into(), color: "#111" },
            ],
            values: totals.iter().map(|t| vec![t / 2, t - t / 2]).collect(),
            markers: Vec::new(),
            unit: "messages",
        }
    }

    #[test]
    fn a_flood_is_cut_so_ordinary_days_stay_readable() {
        // Three weeks of ~100k a day, then one day 50 times that.
        let mut totals: Vec<u64> = (0..21).map(|i| 90_000 + (i * 7_919) % 20_000).collect();
        totals[17] = 5_000_000;
        let chart = stack(&totals);
        let cut = flood_cut(&chart).expect("a flood");
        assert!((109_000..150_000).contains(&cut), "cut just above the highest ordinary day: {cut}");
        let svg = day_stack(&chart, "t");
        assert_eq!(svg.matches("<svg").count(), 2, "an inset and the cut chart");
        let main = svg.split("<svg").nth(2).expect("main chart");
        let heights = bar_heights(main);
        let plot = 260.0 - 26.0 - 16.0 - 30.0;
        let ordinary = heights.iter().enumerate().filter(|(i, _)| *i != 17).map(|(_, h)| *h);
        assert!(
            ordinary.clone().all(|h| h > 0.5 * plot),
            "ordinary days use half the plot or more: {heights:?}"
        );
        assert!(heights[17] <= plot + 0.1, "the flood day is cut at the top");
        assert!(main.contains(r#"class="cut""#) && main.contains(">5M</text>"), "the cut bar says its total");
        // Drawn to scale, the ordinary days would be slivers: what the inset shows.
        let inset = bar_heights(svg.split("<svg").nth(1).expect("inset"));
        assert!(inset[0] < 0.05 * inset[17]);
        // No flood, no cut: a steady series and a short one.
        assert_eq!(flood_cut(&stack(&[100, 120, 90, 110, 130, 95])), None);
        assert_eq!(flood_cut(&stack(&[1, 1000])), None);
        assert_eq!(day_stack(&stack(&[100, 120, 90, 110, 130, 95]), "t").matches("<svg").count(), 1);
    }

    #[test]
    fn labels_are_escaped() {
        let rows = [HBar { label: "<b>".into(), note: "\"x\"".into(), parts: vec![1] }];
        let svg = hbars(&rows, &[Series { name: "a&b".into(), color: "#000" }], "msgs", "t<");
        assert!(svg.contains("&lt;b&gt;") && svg.contains("&quot;x&quot;") && svg.contains("a&amp;b"));
        assert!(!svg.contains("<b>"));
    }
}
