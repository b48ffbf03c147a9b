//! Step progress: ETA for the JSON events, and a bar on stderr when it is a terminal.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

/// Tracks steps per second since the (re)start.
pub struct Progress {
    start: Instant,
    first_step: usize,
    total: usize,
    bar: ProgressBar,
}

impl Progress {
    /// A tracker for `total` steps, `done` of which are already behind us.
    pub fn new(total: usize, done: usize) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            let b = ProgressBar::new(total as u64);
            b.set_style(
                ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} steps (ETA {eta})")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b.set_position(done as u64);
            b
        } else {
            ProgressBar::hidden()
        };
        Self {
            start: Instant::now(),
            first_step: done,
            total,
            bar,
        }
    }

    /// Records that `step` steps are done; returns the ETA in seconds.
    pub fn tick(&mut self, step: usize, loss: f64) -> f64 {
        self.bar.set_position(step as u64);
        self.bar.set_message(format!("loss {loss:.4}"));
        let done = step.saturating_sub(self.first_step).max(1) as f64;
        let per_step = self.start.elapsed().as_secs_f64() / done;
        per_step * self.total.saturating_sub(step) as f64
    }

    /// Clears the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
