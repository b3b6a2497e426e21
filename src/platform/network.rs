//! Waiting for the network at the start of a run. Just after wake the network often lags
//! behind the timer that fired (`network-online.target` is long reached by then), so a
//! repository that cannot be reached at start is retried for up to `network_wait_seconds`
//! (default 120) before the run fails. Only failures before restic did any work are retried:
//! restic exited without a summary and said something that means "cannot reach the server".

use std::time::{Duration, Instant};

use crate::domain::settings::Settings;

/// The setting's key.
pub const KEY: &str = "network_wait_seconds";

/// What restic and the programs it starts (ssh, rclone) say when the server cannot be reached.
const UNREACHABLE: &[&str] = &[
    "connection refused",
    "no route to host",
    "network is unreachable",
    "no such host",
    "temporary failure in name resolution",
    "could not resolve hostname",
    "name or service not known",
    "i/o timeout",
    "connection timed out",
    "operation timed out",
    "connection reset by peer",
    "unable to start the sftp session",
    "tls handshake timeout",
];

/// Did restic fail because the repository's server could not be reached?
pub fn unreachable(exit_code: Option<i32>, has_summary: bool, said: &str) -> bool {
    if has_summary || matches!(exit_code, Some(0) | Some(3) | None) {
        return false;
    }
    let lower = said.to_lowercase();
    UNREACHABLE.iter().any(|p| lower.contains(p))
}

/// The retry budget of one run.
#[derive(Debug)]
pub struct NetworkWait {
    deadline: Instant,
    delay: Duration,
    pub attempts: u32,
}

impl NetworkWait {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let secs = settings.get_u64(KEY, 120)?;
        Ok(Self {
            deadline: Instant::now() + Duration::from_secs(secs),
            delay: Duration::from_secs(2),
            attempts: 1,
        })
    }

    /// Sleeps before the next attempt and returns true, or returns false when the budget is
    /// spent. Delays grow 2, 4, 8, ... up to 30 seconds and never pass the deadline.
    pub async fn again(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.deadline {
            return false;
        }
        let pause = self.delay.min(self.deadline - now);
        tracing::warn!(
            "the repository cannot be reached (attempt {}); waiting {}s for the network, at \
             most until {KEY} has passed",
            self.attempts,
            pause.as_secs().max(1)
        );
        // A stop (SIGTERM from systemctl stop, Ctrl-C) ends the wait; the run is then recorded
        // with the failure it had.
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = crate::platform::child::stop_signal() => {
                tracing::warn!("stopped while waiting for the network");
                self.deadline = Instant::now();
                return false;
            }
        }
        self.delay = (self.delay * 2).min(Duration::from_secs(30));
        self.attempts += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connection_failures_before_any_work_count() {
        let sftp = "subprocess ssh: ssh: connect to host 127.0.0.1 port 22: Connection refused\n\
                    Fatal: unable to open repository at sftp:x:/r: unable to start the sftp \
                    session, error: EOF";
        assert!(unreachable(Some(1), false, sftp));
        assert!(!unreachable(Some(1), true, sftp));
        assert!(!unreachable(Some(3), false, sftp));
        assert!(!unreachable(
            Some(1),
            false,
            "Fatal: wrong password or no key found"
        ));
        assert!(unreachable(
            Some(1),
            false,
            "Fatal: unable to open config file: Head \"http://h/config\": dial tcp: lookup h: \
             no such host"
        ));
    }
}
