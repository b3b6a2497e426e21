//! Settings: the global rows overridden by the device's own.

use std::collections::{BTreeMap, BTreeSet};

use crate::usage_err;

/// The settings in force on one device (read by [`crate::store::settings::load`]): the global
/// rows overridden by the device's own, later pairs winning.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    values: BTreeMap<String, String>,
    /// The device whose own rows are merged in, when known.
    device: Option<String>,
    /// The keys that device sets itself (the others are global).
    own: BTreeSet<String>,
}

impl Settings {
    pub fn from_pairs(rows: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            values: rows.into_iter().collect(),
            device: None,
            own: BTreeSet::new(),
        }
    }

    /// The same settings, known to be `device`'s, which sets `own` itself.
    pub fn with_own(mut self, device: &str, own: impl IntoIterator<Item = String>) -> Self {
        self.device = Some(device.to_string());
        self.own = own.into_iter().collect();
        self
    }

    /// The keys the device sets itself.
    pub fn own_keys(&self) -> &BTreeSet<String> {
        &self.own
    }

    /// Where the value of `key` in force comes from and the `settings set` that changes it
    /// there (`value` is the placeholder shown), as the end of a sentence.
    pub fn fix_of(&self, key: &str, value: &str) -> String {
        match self.device.as_deref().filter(|_| self.own.contains(key)) {
            Some(d) => format!(
                "the {key} in force is device {d:?}'s own, so set the right one with \
                 `restic-fleet settings set {key} {value} --device {}`",
                crate::domain::quote::posix(d)
            ),
            None => format!(
                "the {key} in force is the global setting, so set the right one with \
                 `restic-fleet settings set {key} {value}`"
            ),
        }
    }

    /// Every key with its value in force (for the local copy).
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// The value, or `None` when unset or empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(|v| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }

    /// A non-negative integer setting of at most [`MAX_NUMBER`]; a malformed or larger value is
    /// a configuration error naming the key.
    pub fn get_u64(&self, key: &str, default: u64) -> anyhow::Result<u64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse_number(v).ok_or_else(|| {
                usage_err!(
                    "setting {key} must be a whole number from 0 to {MAX_NUMBER}, found {v:?}; \
                     fix it with `restic-fleet settings set {key} VALUE`"
                )
            }),
        }
    }

    /// A boolean setting (`true/false/yes/no/1/0`).
    pub fn get_bool(&self, key: &str, default: bool) -> anyhow::Result<bool> {
        match self.get(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "true" | "yes" | "1" | "on" => Ok(true),
                "false" | "no" | "0" | "off" => Ok(false),
                _ => Err(usage_err!(
                    "setting {key} must be true or false, found {v:?}; fix it with \
                     `restic-fleet settings set {key} true|false`"
                )),
            },
        }
    }

    /// The time zone cron expressions are evaluated in: the `timezone` setting, else the
    /// machine's local zone, else UTC.
    pub fn timezone(&self) -> anyhow::Result<chrono_tz::Tz> {
        match self.get("timezone") {
            Some(name) => name.trim().parse::<chrono_tz::Tz>().map_err(|_| {
                usage_err!(
                    "setting timezone {name:?} is not an IANA time zone name (like Europe/Prague \
                     or UTC); fix it with `restic-fleet settings set timezone ZONE`"
                )
            }),
            None => Ok(local_timezone()),
        }
    }
}

/// The machine's local IANA zone (`TZ` first, then the OS), UTC when unknown.
pub fn local_timezone() -> chrono_tz::Tz {
    if let Ok(tz) = std::env::var("TZ") {
        let name = tz.trim_start_matches(':');
        if let Ok(z) = name.parse::<chrono_tz::Tz>() {
            return z;
        }
    }
    iana_time_zone::get_timezone()
        .ok()
        .and_then(|n| n.parse::<chrono_tz::Tz>().ok())
        .unwrap_or(chrono_tz::UTC)
}

/// The known key closest to `key`, when one is close enough to be what was meant: the measure
/// and threshold clap uses for a mistyped subcommand (Jaro similarity above 0.7).
pub fn closest_key<'a>(key: &str, known: &'a [String]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro(key, k), k))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.as_str())
}

/// The largest numeric setting accepted (seconds: 68 years). Bounding it keeps every time
/// computation with settings (deadlines, timer values) far from overflow.
pub const MAX_NUMBER: u64 = i32::MAX as u64;

/// A numeric setting's value, if it is a whole number from 0 to [`MAX_NUMBER`].
pub fn parse_number(value: &str) -> Option<u64> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n <= MAX_NUMBER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_near_miss_gets_the_closest_key_and_a_stranger_none() {
        let known: Vec<String> = [
            "repository_url",
            "repository_password",
            "timezone",
            "prevent_sleep",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(closest_key("repositry_url", &known), Some("repository_url"));
        assert_eq!(
            closest_key("repository_pasword", &known),
            Some("repository_password")
        );
        assert_eq!(closest_key("timezon", &known), Some("timezone"));
        assert_eq!(closest_key("nosuch", &known), None);
        assert_eq!(closest_key("x", &known), None);
    }

    #[test]
    fn later_rows_override_and_empty_is_unset() {
        let s = Settings::from_pairs([
            ("max_concurrent_backups".to_string(), "1".to_string()),
            ("repository_url".to_string(), "".to_string()),
            ("max_concurrent_backups".to_string(), "3".to_string()),
        ]);
        assert_eq!(s.get_u64("max_concurrent_backups", 9).unwrap(), 3);
        assert_eq!(s.get("repository_url"), None);
        assert_eq!(s.get_u64("missing", 7).unwrap(), 7);
    }

    #[test]
    fn malformed_number_names_the_key() {
        let s = Settings::from_pairs([("sync_interval_seconds".into(), "five".into())]);
        let e = s.get_u64("sync_interval_seconds", 300).unwrap_err();
        assert!(e.to_string().contains("sync_interval_seconds"), "{e}");
        let s =
            Settings::from_pairs([("missed_run_grace_seconds".into(), "100000000000000".into())]);
        let e = s.get_u64("missed_run_grace_seconds", 900).unwrap_err();
        assert!(e.to_string().contains("from 0 to 2147483647"), "{e}");
        assert_eq!(parse_number(" 2147483647 "), Some(2_147_483_647));
        assert_eq!(parse_number("2147483648"), None);
    }
}
