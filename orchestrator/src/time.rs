//! Timestamps as the peer writes them: RFC 3339 UTC with milliseconds (`2026-11-22T07:39:12.703Z`).

use std::time::{Duration, SystemTime};

/// The latest time [`format`] can write, 9999-12-31T23:59:59.999Z (RFC 3339 has four-digit
/// years): a deadline further out is written as this one, which is "no deadline" in practice.
const LATEST_MS: u64 = 253_402_300_799_999;

fn latest() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(LATEST_MS)
}

/// `start + budget`, saturating at the latest time [`format`] can write. Every deadline built
/// from a user-given duration (`--max-wall-clock`, `maxWallClockMs`, an approval's `timeoutMs`)
/// goes through here, so no number can overflow the clock or the timestamp.
pub fn deadline(start: SystemTime, budget: Duration) -> SystemTime {
    start
        .checked_add(budget)
        .map_or_else(latest, |t| t.min(latest()))
}

/// Now, formatted.
pub fn now() -> String {
    format(SystemTime::now())
}

/// A time, formatted; a time past year 9999 is written as the latest one that can be.
pub fn format(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t.min(latest())).to_string()
}

/// Parses a timestamp written by [`format`] (or any RFC 3339 time).
pub fn parse(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()
}

/// Whole milliseconds of a duration, saturating.
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_saturate_at_the_last_writable_millisecond() {
        let now = SystemTime::now();
        for huge in [
            Duration::from_millis(u64::MAX),
            Duration::from_secs(u64::MAX),
            Duration::MAX,
            Duration::from_millis(LATEST_MS),
        ] {
            assert_eq!(format(deadline(now, huge)), "9999-12-31T23:59:59.999Z");
        }
        let soon = deadline(now, Duration::from_secs(60));
        assert_eq!(soon.duration_since(now).ok(), Some(Duration::from_secs(60)));
        assert_eq!(parse(&format(latest())), Some(latest()));
    }
}
