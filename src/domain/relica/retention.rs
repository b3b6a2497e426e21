//! Relica's retention carried over by `relica-migrate`: a destination's `retention_days` N > 0
//! becomes the job's policy keep-within `Nd`. A job whose destinations disagree gets the longest
//! N; a destination that keeps forever (0 or no value) makes the job keep everything, as
//! forgetting is the one step that cannot be undone. An existing policy is never replaced.

use serde_json::Value;

/// The keep-within days for a job from its planned metadata (`relica.destinations[]`), or
/// `None` when the job keeps everything.
pub fn retention_days(metadata: &Value) -> Option<i64> {
    let dests = metadata.pointer("/relica/destinations")?.as_array()?;
    let days: Vec<Option<i64>> = dests
        .iter()
        .map(|d| d.get("retention_days").and_then(Value::as_i64))
        .collect();
    if days.is_empty() || days.iter().any(|d| !matches!(d, Some(n) if *n > 0)) {
        return None;
    }
    days.into_iter().flatten().max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn days_from_destinations() {
        let m = |d: Value| json!({"relica": {"destinations": d}});
        assert_eq!(
            retention_days(&m(json!([{"retention_days": 30}]))),
            Some(30)
        );
        assert_eq!(
            retention_days(&m(json!([{"retention_days": 30}, {"retention_days": 90}]))),
            Some(90)
        );
        assert_eq!(
            retention_days(&m(json!([{"retention_days": 30}, {"retention_days": 0}]))),
            None
        );
        assert_eq!(retention_days(&m(json!([{"retention_days": null}]))), None);
        assert_eq!(retention_days(&m(json!([]))), None);
        assert_eq!(retention_days(&json!({})), None);
    }
}
