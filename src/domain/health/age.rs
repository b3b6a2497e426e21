//! How a verdict's reason writes a duration (`45s`, `12m`, `3h 5m`, `9d 2h`); the tables of
//! `output/` show durations the same way.

/// A duration in the largest two units: `45s`, `12m`, `3h 5m`, `9d 2h`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    if d > 0 {
        if h > 0 {
            format!("{d}d {h}h")
        } else {
            format!("{d}d")
        }
    } else if h > 0 {
        if m > 0 {
            format!("{h}h {m}m")
        } else {
            format!("{h}h")
        }
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    }
}
