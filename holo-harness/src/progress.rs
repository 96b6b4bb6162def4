//! Progress bars for long work (hidden when stderr is not a terminal).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::workload::Live;

/// A bar that fills over `duration` and shows the live operation counts.
pub fn timed(duration: Duration, label: &str, live: Arc<Live>) -> ProgressBar {
    let bar = ProgressBar::new(duration.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("      {prefix} [{bar:30}] {elapsed}/{duration} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    let weak = bar.downgrade();
    let started = std::time::Instant::now();
    tokio::spawn(async move {
        while let Some(bar) = weak.upgrade() {
            if bar.is_finished() {
                break;
            }
            bar.set_position(started.elapsed().as_millis() as u64);
            bar.set_message(format!(
                "ok {} fail {} unknown {}",
                live.ok.load(Ordering::Relaxed),
                live.fail.load(Ordering::Relaxed),
                live.unknown.load(Ordering::Relaxed)
            ));
            drop(bar);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    bar
}

/// A bar over `n` steps.
pub fn steps(n: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(n);
    bar.set_style(
        ProgressStyle::with_template("      {prefix} [{bar:30}] {pos}/{len} {per_sec} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}
