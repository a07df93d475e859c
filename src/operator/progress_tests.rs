use std::sync::{Arc, Mutex};

use indicatif::TermLike;

use super::*;

/// A terminal that keeps what was drawn and the line the cursor is on.
#[derive(Debug, Clone, Default)]
struct Screen(Arc<Mutex<(Vec<String>, String)>>);

impl Screen {
    fn drawn(&self) -> Vec<String> {
        self.0.lock().unwrap().0.clone()
    }
    /// What the cursor's line holds: a following `println!` continues it.
    fn current_line(&self) -> String {
        self.0.lock().unwrap().1.trim_end().to_owned()
    }
}

impl TermLike for Screen {
    fn width(&self) -> u16 {
        120
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        let mut screen = self.0.lock().unwrap();
        screen.0.push(s.to_owned());
        screen.1.clear();
        Ok(())
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        let mut screen = self.0.lock().unwrap();
        screen.0.push(s.to_owned());
        screen.1.push_str(s);
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.0.lock().unwrap().1.clear();
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_rate_is_whole_events_per_second_and_the_finished_bar_leaves_a_clean_line() {
    let screen = Screen::default();
    let bar = bar_to(ProgressDrawTarget::term_like(Box::new(screen.clone())));
    bar.set_length(40_000);
    for done in (0..=40_000).step_by(10_000) {
        bar.set_position(done);
    }
    let line = screen.drawn().into_iter().rev().find(|l| l.contains("events/s")).expect("a drawn bar");
    let rate = line.split('(').nth(1).and_then(|r| r.split(" events/s").next()).expect("a rate");
    assert!(!rate.is_empty() && rate.chars().all(|c| c.is_ascii_digit() || c == ','), "{line}");
    assert!(line.contains("40000/40000 events"), "{line}");
    finish(&bar);
    assert_eq!(screen.current_line(), "", "the summary would be glued to: {:?}", screen.current_line());
}
