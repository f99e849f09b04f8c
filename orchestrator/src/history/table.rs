//! Text output of the `runs` queries: aligned columns (two spaces apart, no trailing blanks)
//! and short human durations.

/// Renders `headers` and `rows` as aligned columns, one line per row, each ending in `\n`.
/// Widths count characters, so `—` or `é` do not shift a column.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(width(cell));
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths
                    .get(i)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(width(cell));
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `-`, `850ms`, `1.25s`, `2m03s`, `1h02m`.
pub fn duration(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "-".to_owned();
    };
    match ms {
        ..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.2}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000),
        _ => format!("{}h{:02}m", ms / 3_600_000, (ms % 3_600_000) / 60_000),
    }
}

/// `87.5%`, or `-` when there is nothing to rate.
pub fn percent(rate: Option<f64>) -> String {
    rate.map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

/// An optional value, `-` when absent.
pub fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".to_owned(), |v| v.to_string())
}

/// The first line of `text`, cut to `max` characters (`…` marks a cut).
pub fn first_line(text: Option<&str>, max: usize) -> String {
    let line = text.and_then(|t| t.lines().next()).unwrap_or("");
    if line.chars().count() <= max {
        line.to_owned()
    } else {
        let mut s: String = line.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_lines_have_no_trailing_blanks() {
        let out = render(
            &["ID", "STATUS", "NOTE"],
            &[
                vec!["a".into(), "succeeded".into(), "".into()],
                vec!["long-id".into(), "failed".into(), "é—x".into()],
            ],
        );
        assert_eq!(
            out,
            "ID       STATUS     NOTE\n\
             a        succeeded\n\
             long-id  failed     é—x\n"
        );
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(duration(None), "-");
        assert_eq!(duration(Some(0)), "0ms");
        assert_eq!(duration(Some(999)), "999ms");
        assert_eq!(duration(Some(1_250)), "1.25s");
        assert_eq!(duration(Some(123_000)), "2m03s");
        assert_eq!(duration(Some(3_720_000)), "1h02m");
        assert_eq!(percent(Some(0.875)), "87.5%");
        assert_eq!(first_line(Some("abcdef\nx"), 4), "abc…");
    }
}
