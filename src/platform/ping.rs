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

/// Parses and checks a URL a device will contact or the notifier will post to: `http://` or
/// `https://`, a host, no user name or password, no backslash, whitespace or control
/// characters, at most 2048 bytes. The one parser is the `url` crate's, the parser of the HTTP
/// client too, so the URL shown ([`display_url`]) is the URL contacted. The error is the reason,
/// to be put into a sentence by the caller.
pub fn validate_url(url: &str) -> Result<url::Url, String> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err("it must start with http:// or https://".into());
    }
    if url.len() > MAX_URL_LEN {
        return Err(format!("it is longer than {MAX_URL_LEN} bytes"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains spaces or control characters".into());
    }
    // An HTTP client reads `\` as `/`: `http://a\@b/` contacts a while naming b.
    if url.contains('\\') {
        return Err("it contains a backslash".into());
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("it is not a valid URL ({e})"))?;
    if !parsed.has_host() || parsed.host_str().is_some_and(str::is_empty) {
        return Err("it has no host name".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "it carries a user name or password (user:password@); put the token into the path \
             or the query instead"
                .into(),
        );
    }
    Ok(parsed)
}

/// The URL of one ping: `URL/start`, `URL`, `URL/fail`; a query string stays at the end
/// (`https://hc/abc?rid=1` → `https://hc/abc/fail?rid=1`).
pub(crate) fn ping_url(base: &url::Url, kind: PingKind) -> url::Url {
    let mut url = base.clone();
    let path = base.path().trim_end_matches('/');
    match kind {
        PingKind::Success => url.set_path(path),
        PingKind::Start => url.set_path(&format!("{path}/start")),
        PingKind::Fail => url.set_path(&format!("{path}/fail")),
    }
    url
}

/// A URL as logs, run records and `job show` show it: scheme, host and port only, since the
/// path of a ping URL (a healthchecks UUID, an ntfy topic, a webhook token) is what grants
/// access. The host is the one the HTTP client would contact, read by the same parser.
pub fn display_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) if u.has_host() => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}/***",
                u.scheme(),
                u.host_str().unwrap_or_default()
            )
        }
        _ => "(not a URL)".into(),
    }
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
    let url =
        validate_url(url).map_err(|e| format!("refusing to contact {}: {e}", display_url(url)))?;
    let url = url.as_str();
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
pub(crate) async fn send_ping(base: &url::Url, kind: PingKind, body: String) -> Result<(), String> {
    let url = ping_url(base, kind).to_string();
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
        let at = |b: &str, k| ping_url(&validate_url(b).unwrap(), k).to_string();
        let b = "https://hc-ping.com/abc";
        assert_eq!(at(b, PingKind::Start), "https://hc-ping.com/abc/start");
        assert_eq!(at(b, PingKind::Success), "https://hc-ping.com/abc");
        assert_eq!(at(b, PingKind::Fail), "https://hc-ping.com/abc/fail");
        assert_eq!(at("http://h/x/?a=1", PingKind::Fail), "http://h/x/fail?a=1");
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
        for bad in [
            "http://127.0.0.1:9\\@display.example/x",
            "https://h\\x/",
            "https://user:pw@hc-ping.com/abc",
            "https://user@hc-ping.com/abc",
            "https://:pw@hc-ping.com/abc",
        ] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
        // What is shown is what the HTTP client would contact.
        assert_eq!(
            display_url("http://127.0.0.1:9\\@display.example/x"),
            "http://127.0.0.1:9/***"
        );
        assert_eq!(
            display_url("https://u:p@hc-ping.com/secret-uuid?x=1"),
            "https://hc-ping.com/***"
        );
        assert_eq!(display_url("nonsense"), "(not a URL)");
    }
}
