//! Which restic-fleet clients understand the database: the oldest client version this build's
//! schema needs, and version numbers compared by Semantic Versioning's precedence.
//!
//! A client keeps working against a schema newer than its own (it ignores migrations it does
//! not know), so a migration that older clients would misread raises the minimum: the client
//! that applies it records [`SCHEMA_MIN_CLIENT`] in the database, and `status` names every
//! device whose last reported version is older.

use std::cmp::Ordering;

/// The first restic-fleet version that understands every migration embedded in this build.
/// Raise it, to the version being released, with a migration that older clients would misread.
pub const SCHEMA_MIN_CLIENT: &str = "0.1.0";

/// A version number `MAJOR.MINOR.PATCH[-PRE-RELEASE][+BUILD]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientVersion {
    core: [u64; 3],
    pre: Vec<String>,
}

impl ClientVersion {
    /// The version `text` names (surrounding spaces and a leading `v` allowed), or `None`.
    pub fn parse(text: &str) -> Option<ClientVersion> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let without_build = text.split_once('+').map_or(text, |(v, _)| v);
        let (core, pre) = match without_build.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (without_build, None),
        };
        let numbers: Vec<&str> = core.split('.').collect();
        let [major, minor, patch] = numbers[..] else {
            return None;
        };
        let number = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        let core = [number(major)?, number(minor)?, number(patch)?];
        let pre = match pre {
            None => Vec::new(),
            Some(p) => {
                let ids: Vec<String> = p.split('.').map(str::to_string).collect();
                let valid = |id: &String| {
                    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                };
                if !ids.iter().all(valid) {
                    return None;
                }
                ids
            }
        };
        Some(ClientVersion { core, pre })
    }
}

impl Ord for ClientVersion {
    /// Semantic Versioning's precedence: the numbers, then a pre-release before its release,
    /// pre-release identifiers compared one by one (numbers numerically and below words).
    fn cmp(&self, other: &Self) -> Ordering {
        self.core
            .cmp(&other.core)
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => compare_pre(&self.pre, &other.pre),
            })
    }
}

impl PartialOrd for ClientVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn compare_pre(a: &[String], b: &[String]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(m), Ok(n)) => m.cmp(&n),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// Whether a device that last reported `reported` runs a client older than `minimum`. An
/// unknown version (never synced, or not a version number) is not called old: `status` says
/// "unknown" for it instead.
pub fn is_outdated(reported: Option<&str>, minimum: Option<&str>) -> bool {
    match (
        reported.and_then(ClientVersion::parse),
        minimum.and_then(ClientVersion::parse),
    ) {
        (Some(r), Some(m)) => r < m,
        _ => false,
    }
}

/// The higher of the minimum stored in the database and this build's, as the text to store;
/// `None` when the stored one is already as high (a client never lowers it). A stored value
/// that is not a version number is replaced.
pub fn raised_minimum(stored: Option<&str>, ours: &str) -> Option<String> {
    let ours_v = ClientVersion::parse(ours)?;
    match stored.and_then(ClientVersion::parse) {
        Some(s) if s >= ours_v => None,
        _ => Some(ours.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> ClientVersion {
        ClientVersion::parse(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn semver_precedence() {
        // The example chain of semver.org, section 11, then the numbers compared as numbers.
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.2.0",
            "1.10.0",
            "2.0.0",
        ];
        for pair in chain.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(v("0.1.0+git.abc").cmp(&v("0.1.0")), Ordering::Equal);
        assert_eq!(v(" v0.1.0 "), v("0.1.0"));
        assert!(v("0.9.0") < v("0.10.0"));
    }

    #[test]
    fn what_is_not_a_version() {
        for bad in [
            "",
            "unknown",
            "0.1",
            "0.1.0.1",
            "a.b.c",
            "0.1.x",
            "0.1.0-",
            "0.1.0-a..b",
            "-1.0.0",
        ] {
            assert!(
                ClientVersion::parse(bad).is_none(),
                "{bad:?} should not parse"
            );
        }
    }

    #[test]
    fn outdated_only_when_both_versions_are_known() {
        assert!(is_outdated(Some("0.0.9"), Some("0.1.0")));
        assert!(is_outdated(Some("0.2.0-rc.1"), Some("0.2.0")));
        assert!(!is_outdated(Some("0.1.0"), Some("0.1.0")));
        assert!(!is_outdated(Some("0.3.0"), Some("0.1.0")));
        assert!(!is_outdated(None, Some("0.1.0")));
        assert!(!is_outdated(Some("garbage"), Some("0.1.0")));
        assert!(!is_outdated(Some("0.0.1"), None));
    }

    #[test]
    fn the_minimum_only_rises() {
        assert_eq!(raised_minimum(None, "0.1.0").as_deref(), Some("0.1.0"));
        assert_eq!(
            raised_minimum(Some("0.0.9"), "0.1.0").as_deref(),
            Some("0.1.0")
        );
        assert_eq!(raised_minimum(Some("0.1.0"), "0.1.0"), None);
        assert_eq!(raised_minimum(Some("0.2.0"), "0.1.0"), None);
        assert_eq!(
            raised_minimum(Some("junk"), "0.1.0").as_deref(),
            Some("0.1.0")
        );
        assert!(ClientVersion::parse(SCHEMA_MIN_CLIENT).is_some());
        // This build understands its own schema.
        assert!(!is_outdated(
            Some(env!("CARGO_PKG_VERSION")),
            Some(SCHEMA_MIN_CLIENT)
        ));
    }
}
