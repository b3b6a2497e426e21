//! What Relica facts may be stored in `metadata`, and how: never a field whose name says it is
//! a secret (a second guard behind the parser, which reads none), times in RFC 3339.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

/// Whether a metadata key must never be stored (it names a secret).
pub fn is_secret_field_name(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["key", "password", "passwd", "secret", "token", "credential"]
        .iter()
        .any(|s| k.contains(s))
}

/// Removes, recursively, every object member whose name [`is_secret_field_name`].
pub(super) fn scrub_secrets(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !is_secret_field_name(k));
            m.values_mut().for_each(scrub_secrets);
        }
        Value::Array(a) => a.iter_mut().for_each(scrub_secrets),
        _ => {}
    }
}

/// A time as stored in metadata: RFC 3339 in UTC, with as many fraction digits as it has.
pub(super) fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
