//! What a running backup shows: a progress bar on a terminal, a log line a minute otherwise
//! (journald and the Windows task history want plain lines, not redraws).

use std::io::IsTerminal;
use std::time::Duration;

use crate::domain::restic::Status;

use crate::output::human_bytes;

pub(crate) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_log: std::time::Instant,
}

impl Progress {
    pub(crate) fn new(terminal: bool, job_name: &str) -> Self {
        let bar = terminal.then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(1000),
                indicatif::ProgressDrawTarget::stderr(),
            );
            let style = indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {percent:>3}% {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(job_name.to_string());
            bar
        });
        Self {
            bar,
            last_log: std::time::Instant::now(),
        }
    }

    pub(crate) fn update(&mut self, st: &Status) {
        let msg = format!(
            "{}/{} files, {}/{}",
            st.files_done,
            st.total_files,
            human_bytes(st.bytes_done),
            human_bytes(st.total_bytes)
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position((st.percent_done * 1000.0).clamp(0.0, 1000.0) as u64);
                bar.set_message(msg);
            }
            None => {
                if self.last_log.elapsed() >= Duration::from_secs(60) {
                    self.last_log = std::time::Instant::now();
                    let eta = st
                        .seconds_remaining
                        .map(|s| format!(", about {s}s left"))
                        .unwrap_or_default();
                    tracing::info!("progress {:.0}%: {msg}{eta}", st.percent_done * 100.0);
                }
            }
        }
    }

    pub(crate) fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Whether `run` should draw a progress bar: stderr is a terminal and JSON was not asked for.
pub fn want_progress(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}
