//! Timestamps as the peer writes them: RFC 3339 UTC with milliseconds (`2026-11-22T07:39:12.703Z`).

use std::time::SystemTime;

/// Now, formatted.
pub fn now() -> String {
    format(SystemTime::now())
}

/// A time, formatted.
pub fn format(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Parses a timestamp written by [`format`] (or any RFC 3339 time).
pub fn parse(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()
}

/// Whole milliseconds of a duration, saturating.
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
