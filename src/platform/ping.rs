//! Outgoing HTTP for monitoring: healthchecks.io-style pings that `run` sends per job
//! (`URL/start`, `URL`, `URL/fail`) and the POSTs of `status --notify`.
//!
//! Everything here takes plain values (URL, body, timeout), never the database, so an offline
//! run pings exactly like an online one. A monitoring service that is down must never fail a
//! backup: callers get a `Result<(), String>` to note, never an error to propagate.
//!
//! URLs are validated where they are written (`job edit --ping-url`, `settings set`) and again
//! here before use, since the database decides what a device contacts.

use std::time::Duration;

/// How long one request may take, connect included.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);
/// Tries per ping (the first plus retries after 1 s and 3 s). The notifier tries once: its next
/// call is the retry.
pub(crate) const PING_ATTEMPTS: usize = 3;
/// At most this much of a response body is read (only to name the error).
const MAX_URL_LEN: usize = 2048;

/// The healthchecks.io endpoints a run reports to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PingKind {
    Start,
    Success,
    Fail,
}

impl PingKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PingKind::Start => "start",
            PingKind::Success => "success",
            PingKind::Fail => "fail",
        }
    }
}

/// Checks a URL a device will contact or the notifier will post to: `http://` or `https://`,
/// a host, no whitespace or control characters, at most 2048 bytes. The error is the reason,
/// to be put into a sentence by the caller.
pub fn validate_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| "it must start with http:// or https://".to_string())?;
    if url.len() > MAX_URL_LEN {
        return Err(format!("it is longer than {MAX_URL_LEN} bytes"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains spaces or control characters".into());
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err("it has no host name".into());
    }
    Ok(())
}

/// The URL of one ping: `URL/start`, `URL`, `URL/fail`; a query string stays at the end
/// (`https://hc/abc?rid=1` → `https://hc/abc/fail?rid=1`).
pub(crate) fn ping_url(base: &str, kind: PingKind) -> String {
    let (path, query) = match base.find('?') {
        Some(q) => base.split_at(q),
        None => (base, ""),
    };
    let path = path.trim_end_matches('/');
    match kind {
        PingKind::Success => format!("{path}{query}"),
        PingKind::Start => format!("{path}/start{query}"),
        PingKind::Fail => format!("{path}/fail{query}"),
    }
}

/// A URL as logs and run records show it: scheme and host only, since the path of a ping URL
/// (a healthchecks UUID, an ntfy topic, a webhook token) is what grants access.
pub fn display_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return "***".into();
    };
    let rest = &url[scheme_end + 3..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    format!("{}{host}/***", &url[..scheme_end + 3])
}

/// One HTTP POST, tried up to `attempts` times. Blocking: call it from `spawn_blocking` in async
/// code. The error says what failed, with the URL masked.
pub(crate) fn post_blocking(
    url: &str,
    headers: &[(&str, String)],
    body: &str,
    timeout: Duration,
    attempts: usize,
) -> Result<(), String> {
    validate_url(url).map_err(|e| format!("refusing to contact {}: {e}", display_url(url)))?;
    let builder = ureq::AgentBuilder::new()
        .timeout(timeout)
        .redirects(3)
        .user_agent(concat!("restic-fleet/", env!("CARGO_PKG_VERSION")));
    #[cfg(windows)]
    let builder = builder.tls_connector(std::sync::Arc::new(
        native_tls::TlsConnector::new().map_err(|e| format!("TLS is not available: {e}"))?,
    ));
    let agent = builder.build();
    let mut last = String::new();
    for attempt in 0..attempts.max(1) {
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(if attempt == 1 { 1 } else { 3 }));
        }
        let mut req = agent.post(url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        match req.send_string(body) {
            Ok(_) => return Ok(()),
            Err(ureq::Error::Status(code, resp)) => {
                last = format!(
                    "{} answered HTTP {code} {}",
                    display_url(url),
                    resp.status_text()
                );
                // A client error will not go away by retrying (wrong URL, bad token).
                if (400..500).contains(&code) && code != 408 && code != 429 {
                    break;
                }
            }
            Err(ureq::Error::Transport(t)) => {
                last = format!("{} could not be reached: {}", display_url(url), t.kind());
                if let Some(msg) = t.message() {
                    last.push_str(&format!(" ({msg})"));
                }
            }
        }
    }
    Err(last)
}

/// Sends one ping of a job's run. Never fails the caller: the error is returned to be noted.
pub(crate) async fn send_ping(base: &str, kind: PingKind, body: String) -> Result<(), String> {
    let url = ping_url(base, kind);
    let headers = vec![("Content-Type", "text/plain; charset=utf-8".to_string())];
    tokio::task::spawn_blocking(move || {
        post_blocking(&url, &headers, &body, TIMEOUT, PING_ATTEMPTS)
    })
    .await
    .unwrap_or_else(|e| Err(format!("the ping task failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_paths() {
        let b = "https://hc-ping.com/abc";
        assert_eq!(
            ping_url(b, PingKind::Start),
            "https://hc-ping.com/abc/start"
        );
        assert_eq!(ping_url(b, PingKind::Success), "https://hc-ping.com/abc");
        assert_eq!(ping_url(b, PingKind::Fail), "https://hc-ping.com/abc/fail");
        assert_eq!(
            ping_url("http://h/x/?a=1", PingKind::Fail),
            "http://h/x/fail?a=1"
        );
    }

    #[test]
    fn urls_are_checked_and_masked() {
        assert!(validate_url("https://hc-ping.com/abc").is_ok());
        assert!(validate_url("http://127.0.0.1:8080/p").is_ok());
        assert!(validate_url("ftp://x/").is_err());
        assert!(validate_url("https://").is_err());
        assert!(validate_url("https://a b/").is_err());
        assert!(validate_url("https://h/\n").is_err());
        assert!(validate_url("file:///etc/passwd").is_err());
        assert_eq!(
            display_url("https://u:p@hc-ping.com/secret-uuid?x=1"),
            "https://hc-ping.com/***"
        );
    }
}
