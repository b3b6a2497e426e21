//! Reading the Relica JSON: typed accessors that know the JSON path of what they read, so every
//! error names the element it is about. JSON `null` counts as absent throughout.

use chrono::{DateTime, Datelike, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::{RelicaError, malformed};

/// What a JSON value is, for errors: `the string "abc"`, `an array`, ...
pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => {
            let short: String = s.chars().take(60).collect();
            format!("the string {short:?}")
        }
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// A field; JSON `null` counts as absent (Go writes `null` for nil slices and pointers).
pub(super) fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// `v` as an object, or an error at `path` saying what it is instead.
pub(super) fn as_object<'a>(
    v: &'a Value,
    path: &str,
) -> Result<&'a Map<String, Value>, RelicaError> {
    v.as_object()
        .ok_or_else(|| malformed(path, format!("expected an object, found {}", describe(v))))
}

pub(super) fn req_object<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<&'a Map<String, Value>, RelicaError> {
    let p = format!("{path}.{key}");
    let v = field(obj, key).ok_or_else(|| malformed(&p, "is missing"))?;
    as_object(v, &p)
}

pub(super) fn opt_object<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Option<&'a Map<String, Value>>, RelicaError> {
    field(obj, key)
        .map(|v| as_object(v, &format!("{path}.{key}")))
        .transpose()
}

pub(super) fn opt_array<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<&'a [Value], RelicaError> {
    match field(obj, key) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(v) => Err(malformed(
            format!("{path}.{key}"),
            format!("expected an array, found {}", describe(v)),
        )),
    }
}

pub(super) fn req_array<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<&'a [Value], RelicaError> {
    if field(obj, key).is_none() {
        return Err(malformed(format!("{path}.{key}"), "is missing"));
    }
    opt_array(obj, path, key)
}

pub(super) fn opt_str(
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Option<String>, RelicaError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(malformed(
            format!("{path}.{key}"),
            format!("expected a string, found {}", describe(v)),
        )),
    }
}

pub(super) fn req_str(
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<String, RelicaError> {
    opt_str(obj, path, key)?.ok_or_else(|| malformed(format!("{path}.{key}"), "is missing"))
}

/// A UUID, or an error at `path` quoting the text.
pub(super) fn parse_uuid(s: &str, path: &str) -> Result<Uuid, RelicaError> {
    Uuid::parse_str(s).map_err(|_| malformed(path, format!("{s:?} is not a UUID")))
}

pub(super) fn opt_uuid(
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Option<Uuid>, RelicaError> {
    match opt_str(obj, path, key)? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => parse_uuid(&s, &format!("{path}.{key}")).map(Some),
    }
}

pub(super) fn req_uuid(
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Uuid, RelicaError> {
    opt_uuid(obj, path, key)?.ok_or_else(|| malformed(format!("{path}.{key}"), "is missing"))
}

pub(super) fn opt_bool(
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Option<bool>, RelicaError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(malformed(
            format!("{path}.{key}"),
            format!("expected true or false, found {}", describe(v)),
        )),
    }
}

pub(super) fn opt_i64(
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Option<i64>, RelicaError> {
    match field(obj, key) {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            malformed(
                format!("{path}.{key}"),
                format!("expected an integer, found {}", describe(v)),
            )
        }),
    }
}

/// RFC 3339 with optional nanoseconds; Go's zero time (year 1) and `""` mean "never".
pub(super) fn parse_time(s: &str, path: &str) -> Result<Option<DateTime<Utc>>, RelicaError> {
    if s.is_empty() {
        return Ok(None);
    }
    let t = DateTime::parse_from_rfc3339(s).map_err(|e| {
        malformed(
            path,
            format!("{s:?} is not an RFC 3339 time like 2025-12-15T03:01:07.580094317Z ({e})"),
        )
    })?;
    let t = t.with_timezone(&Utc);
    Ok((t.year() > 1).then_some(t))
}

pub(super) fn opt_time(
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Option<DateTime<Utc>>, RelicaError> {
    match opt_str(obj, path, key)? {
        None => Ok(None),
        Some(s) => parse_time(&s, &format!("{path}.{key}")),
    }
}

pub(super) fn str_list(
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Vec<String>, RelicaError> {
    opt_array(obj, path, key)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str().map(str::to_owned).ok_or_else(|| {
                malformed(
                    format!("{path}.{key}[{i}]"),
                    format!("expected a string, found {}", describe(v)),
                )
            })
        })
        .collect()
}

pub(super) fn int_list(
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
    lo: u8,
    hi: u8,
    meaning: &str,
) -> Result<Vec<u8>, RelicaError> {
    opt_array(obj, path, key)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_i64()
                .filter(|n| (lo as i64..=hi as i64).contains(n))
                .map(|n| n as u8)
                .ok_or_else(|| {
                    malformed(
                        format!("{path}.{key}[{i}]"),
                        format!("{} is not {meaning} ({lo}-{hi})", describe(v)),
                    )
                })
        })
        .collect()
}
