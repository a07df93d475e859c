//! A small plot as inline SVG, drawn on the server: a rate over the last 24 hours from
//! per-minute counts, averaged over five minutes (288 points), with the peak labelled. The
//! path always has every point (a quiet day is a flat line at zero, not an empty plot).

use std::fmt::Write as _;

use maud::{Markup, html};

/// Minutes per point.
const STEP: usize = 5;
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 110.0;
/// Room under the line for the time labels.
const BOTTOM: f64 = 16.0;

/// Per-second rates of `per_minute`, one per [`STEP`] minutes, oldest first.
pub(super) fn rates(per_minute: &[u64]) -> Vec<f64> {
    per_minute.chunks(STEP).map(|c| c.iter().sum::<u64>() as f64 / (c.len() * 60) as f64).collect()
}

/// The SVG path of `rates` scaled to `peak` (the line; `area` closes it along the bottom).
fn path(rates: &[f64], peak: f64, area: bool) -> String {
    let plot_height = HEIGHT - BOTTOM;
    let dx = WIDTH / (rates.len().max(2) - 1) as f64;
    let mut d = String::new();
    for (i, rate) in rates.iter().enumerate() {
        let y = plot_height - if peak > 0.0 { rate / peak * (plot_height - 4.0) } else { 0.0 };
        let _ = write!(d, "{}{:.1},{:.1}", if i == 0 { "M" } else { " L" }, i as f64 * dx, y);
    }
    if area {
        let _ = write!(d, " L{WIDTH:.1},{plot_height:.1} L0.0,{plot_height:.1} Z");
    }
    d
}

/// A rate in words: `0.25/s`, `12/s`, `0/s`.
pub(super) fn rate_text(rate: f64) -> String {
    if rate == 0.0 {
        "0/s".into()
    } else if rate < 10.0 {
        format!("{rate:.2}/s")
    } else {
        format!("{rate:.0}/s")
    }
}

/// The plot of `per_minute` titled `title`; `name` tells plots apart (`data-plot`).
pub(super) fn plot(name: &str, title: &str, per_minute: &[u64]) -> Markup {
    let rates = rates(per_minute);
    let peak = rates.iter().copied().fold(0.0, f64::max);
    let total: u64 = per_minute.iter().sum();
    let label = format!("{title}: peak {} over 5 min, {total} in 24 h", rate_text(peak));
    let base = HEIGHT - BOTTOM;
    html! {
        figure.plot data-plot=(name) {
            figcaption { (title) " per second, last 24 h " span.muted { "(peak " (rate_text(peak)) ", " (total) " in all)" } }
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(label) {
                title { (label) }
                line x1="0" y1=(base) x2=(WIDTH) y2=(base) class="axis" {}
                path class="area" d=(path(&rates, peak, true)) {}
                path class="line" d=(path(&rates, peak, false)) {}
                text x="2" y=(HEIGHT - 3.0) class="tick" { "24 h ago" }
                text x=(WIDTH / 2.0) y=(HEIGHT - 3.0) class="tick" text-anchor="middle" { "12 h ago" }
                text x=(WIDTH - 2.0) y=(HEIGHT - 3.0) class="tick" text-anchor="end" { "now" }
                text x=(WIDTH - 2.0) y="11" class="tick" text-anchor="end" { (rate_text(peak)) }
            }
        }
    }
}

#[cfg(test)]
#[path = "plot_tests.rs"]
mod tests;
