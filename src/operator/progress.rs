//! The progress bar of `zenedge rebuild` and `zenedge verify` (on a terminal only; indicatif
//! draws nothing when stderr is not one).
//!
//! The rate is whole events per second (`30,783 events/s`): indicatif's own `{per_sec}`
//! prints four decimals. When the work is done the bar is cleared, so the summary printed
//! next starts on a line of its own: a finished bar leaves the cursor at the end of its
//! line, padded to the terminal's width, and the summary was glued to it wherever that
//! width was not the real one.

use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// A bar on stderr.
pub fn bar() -> ProgressBar {
    bar_to(ProgressDrawTarget::stderr())
}

/// A bar drawn to `target` (tests draw to a recording terminal).
pub fn bar_to(target: ProgressDrawTarget) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(0), target);
    let style = ProgressStyle::with_template("{bar:40} {pos}/{len} events ({rate}, {eta} left)")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{} events/s", HumanCount(state.per_sec().round() as u64));
        });
    bar.set_style(style);
    bar
}

/// Ends the bar and clears it: what comes next starts at the beginning of a line.
pub fn finish(bar: &ProgressBar) {
    bar.finish_and_clear();
}

#[cfg(test)]
#[path = "progress_tests.rs"]
mod tests;
