//! Progress bars: the binary's side of the library's progress events.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar for a counted job; hidden when stderr is not a terminal (CI logs, pipes).
pub fn bar(what: &str, len: u64) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}
