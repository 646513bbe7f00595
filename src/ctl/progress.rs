//! How many items are applied, for people at a terminal: a bar (indicatif) when stdout is a
//! terminal, one line per change otherwise.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};

/// Progress of `applied` out of `total` items.
pub struct Progress {
    bar: Option<ProgressBar>,
    shown: Option<(usize, usize)>,
}

impl Progress {
    /// A bar on a terminal, plain lines otherwise.
    pub fn new() -> Self {
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stdout());
            bar.set_style(
                ProgressStyle::with_template("applied {pos}/{len} [{bar:30}] {elapsed} {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(500));
            bar
        });
        Progress { bar, shown: None }
    }

    /// Shows `applied` of `total` if that changed.
    pub fn update(&mut self, applied: usize, total: usize) -> std::io::Result<()> {
        if self.shown == Some((applied, total)) {
            return Ok(());
        }
        self.shown = Some((applied, total));
        match &self.bar {
            Some(bar) => {
                bar.set_length(total as u64);
                bar.set_position(applied as u64);
                Ok(())
            }
            None => writeln!(std::io::stdout().lock(), "applied {applied} of {total}"),
        }
    }

    /// Ends the bar (leaving it on screen).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}
