//! How things look on stderr: human durations (`4.01s`, `2m 3s`), coloured status words, and
//! lines cut to the terminal's width. Pure functions; whether to colour or cut is decided once
//! in `display`.

use std::time::Duration;

/// `0.05s`, `4.01s`, `59.99s`, `2m 3s`, `1h 2m`: two decimals under a minute, whole units
/// above.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 60_000 {
        return format!("{:.2}s", d.as_secs_f64());
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m {s}s")
    }
}

/// SGR colours for status words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Succeeded.
    Good,
    /// Failed, cancelled.
    Bad,
    /// Skipped, not run, retried.
    Warn,
    /// Headings and counts.
    Bold,
    /// Paths and quieter text.
    Dim,
}

/// `text` in `tone` when `colour`, else as it is.
pub fn paint(text: &str, tone: Tone, colour: bool) -> String {
    if !colour || text.is_empty() {
        return text.to_owned();
    }
    let code = match tone {
        Tone::Good => "32",
        Tone::Bad => "1;31",
        Tone::Warn => "33",
        Tone::Bold => "1",
        Tone::Dim => "2",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// The tone of a stage or run status word.
pub fn tone_of(status: &str) -> Tone {
    match status {
        "succeeded" => Tone::Good,
        "failed" | "cancelled" => Tone::Bad,
        _ => Tone::Warn,
    }
}

/// `line` cut to `width` columns (by display width, wide characters counted twice), `…` at
/// the end when cut. `None`: no limit.
pub fn fit(line: &str, width: Option<usize>) -> String {
    match width {
        Some(w) if w > 1 => console::truncate_str(line, w, "…").into_owned(),
        _ => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_writes_them() {
        let ms = Duration::from_millis;
        assert_eq!(duration(ms(0)), "0.00s");
        assert_eq!(duration(ms(4012)), "4.01s");
        assert_eq!(duration(ms(59_994)), "59.99s");
        assert_eq!(duration(ms(123_000)), "2m 3s");
        assert_eq!(duration(ms(3_723_000)), "1h 2m");
    }

    #[test]
    fn colour_only_when_asked() {
        assert_eq!(paint("failed", Tone::Bad, false), "failed");
        assert_eq!(paint("failed", Tone::Bad, true), "\x1b[1;31mfailed\x1b[0m");
        assert_eq!(tone_of("succeeded"), Tone::Good);
        assert_eq!(tone_of("skipped"), Tone::Warn);
    }

    #[test]
    fn lines_fit_the_terminal() {
        assert_eq!(fit("abcdef", Some(4)), "abc…");
        assert_eq!(fit("abc", Some(4)), "abc");
        assert_eq!(fit("日本語です", Some(5)), "日本…");
        assert_eq!(fit("abcdef", None), "abcdef");
    }
}
