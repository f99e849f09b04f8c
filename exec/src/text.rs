//! Stage output as text for people: colour and cursor codes removed, the last lines of a
//! stream. Logs keep the bytes; everything the runner prints or records as text (summaries,
//! failure tails, error files, status) goes through here first.
//!
//! Why the end: a failing build prints thousands of warnings before the one error that
//! matters, and tools print their verdict last. The peer's first-240-characters rule shows
//! the noise; the tail shows the error.

/// Removes ANSI escape sequences: CSI (`ESC [ … final`, colours and cursor moves), OSC
/// (`ESC ] … BEL` or `ESC ] … ESC \`, titles and hyperlinks), and two-byte escapes. A bare
/// carriage return before a newline is dropped too (CRLF output reads as LF); other control
/// characters except tab and newline are removed, so a terminal shows exactly what a file does.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                Some('[') => {
                    // Parameters and intermediates, then one final byte in @..~.
                    for c in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\x07' {
                            break;
                        }
                        if c == '\x1b' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                // `ESC (` / `ESC )` select a character set and take one more character.
                Some('(' | ')') => {
                    chars.next();
                }
                _ => {}
            },
            // The 8-bit CSI.
            '\u{9b}' => {
                for c in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&c) {
                        break;
                    }
                }
            }
            '\n' | '\t' => out.push(c),
            '\r' if chars.peek() == Some(&'\n') => {}
            // A lone CR (progress bars redrawing a line) starts the line again, as on a terminal.
            '\r' => {
                let start = out.rfind('\n').map_or(0, |i| i + 1);
                out.truncate(start);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Stream bytes as text: a tail cut from a longer stream may start inside a code point, so up
/// to 3 leading continuation bytes are skipped rather than shown as a replacement character;
/// other invalid UTF-8 is shown lossily. Escape codes are removed.
pub fn clean(bytes: &[u8]) -> String {
    let skip = bytes
        .iter()
        .take(3)
        .take_while(|b| (0x80..0xc0).contains(*b))
        .count();
    strip_ansi(&String::from_utf8_lossy(&bytes[skip..]))
}

/// The last `n` lines of `text` with trailing blank lines removed, and how many lines came
/// before them (0 when nothing was cut).
pub fn last_lines(text: &str, n: usize) -> (Vec<&str>, usize) {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let cut = lines.len().saturating_sub(n);
    (lines[cut..].to_vec(), cut)
}

/// The last non-blank line of `text`, trimmed, at most `max` characters: a longer line keeps
/// its end, with `…` in front. Empty when there is no text.
pub fn last_line(text: &str, max: usize) -> String {
    let line = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    let count = line.chars().count();
    if count <= max {
        return line.to_owned();
    }
    let mut out = String::from("…");
    out.extend(line.chars().skip(count - max));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_codes_are_removed() {
        assert_eq!(
            strip_ansi("\x1b[1;31merror\x1b[0m: bad\x1b[K"),
            "error: bad"
        );
        assert_eq!(
            strip_ansi("\x1b]8;;http://x\x07link\x1b]8;;\x1b\\ done"),
            "link done"
        );
        assert_eq!(strip_ansi("a\x1b(Bb\x1bMc"), "abc");
        assert_eq!(strip_ansi("\u{9b}32mgreen"), "green");
        assert_eq!(strip_ansi("tab\there\r\nnext\x07"), "tab\there\nnext");
        assert_eq!(strip_ansi("10%\r50%\r100%\nend"), "100%\nend");
        // An escape cut off at the end of the text does not eat what came before.
        assert_eq!(strip_ansi("kept\x1b["), "kept");
        assert_eq!(strip_ansi("ünï ✓"), "ünï ✓");
    }

    #[test]
    fn clean_skips_a_cut_code_point() {
        assert_eq!(clean(&"€uro".as_bytes()[1..]), "uro");
        assert_eq!(clean(b"x\xff\x1b[0m"), "x\u{FFFD}");
    }

    #[test]
    fn the_last_lines_and_how_many_came_before() {
        let (tail, cut) = last_lines("a\nb\nc\n\n\n", 2);
        assert_eq!((tail, cut), (vec!["b", "c"], 1));
        let (tail, cut) = last_lines("a\nb", 5);
        assert_eq!((tail, cut), (vec!["a", "b"], 0));
        assert_eq!(last_lines("", 3), (Vec::<&str>::new(), 0));
    }

    #[test]
    fn the_last_line_keeps_its_end() {
        assert_eq!(last_line("noise\nerror: real\n  \n", 240), "error: real");
        assert_eq!(last_line("  \n", 240), "");
        assert_eq!(last_line("abcdef", 3), "…def");
        assert_eq!(last_line("ééé", 3), "ééé");
    }
}
