//! stdout is data only. A reader that goes away early (`| head`) must not turn into a panic:
//! a broken pipe is ignored, the command's exit code stands.

use std::io::Write;

/// Prints `text` and a newline on stdout.
pub fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
}

/// Prints a JSON value, pretty, on stdout.
pub fn json(value: &serde_json::Value) {
    line(&serde_json::to_string_pretty(value).expect("a JSON value always serializes"));
}
