//! Parsers for flag values that clap's built-in parsers would let through into a panic or a
//! nonsense state: a number of seconds must be finite, not negative and small enough to be a
//! `Duration` (`--interval inf`, `NaN`, `-1` and `1e400` are usage errors, exit 2).

use std::time::Duration;

/// The longest `--interval` accepted: a day. Longer is surely a typo, and the bound keeps
/// every later `Duration` arithmetic far from overflow.
const MAX_SECONDS: f64 = 86_400.0;

/// A number of seconds (`0.5`, `2`): finite, at least 0, at most a day.
pub fn seconds(raw: &str) -> Result<Duration, String> {
    let value: f64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("`{raw}` is not a number of seconds"))?;
    if !value.is_finite() {
        return Err(format!("`{raw}` is not a finite number of seconds"));
    }
    if value < 0.0 {
        return Err(format!("`{raw}`: seconds cannot be negative"));
    }
    if value > MAX_SECONDS {
        return Err(format!("`{raw}`: at most {MAX_SECONDS} seconds (a day)"));
    }
    Ok(Duration::from_secs_f64(value))
}

#[cfg(test)]
mod tests {
    use super::seconds;
    use std::time::Duration;

    #[test]
    fn odd_numbers_are_errors_not_panics() {
        for bad in [
            "inf", "-inf", "NaN", "nan", "-1", "-0.001", "1e400", "86400.5", "", "1s", "0x10",
        ] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
        assert_eq!(seconds("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(seconds("-0"), Ok(Duration::ZERO));
        assert_eq!(seconds(" 2 "), Ok(Duration::from_secs(2)));
        assert_eq!(seconds("86400"), Ok(Duration::from_secs(86_400)));
    }
}
