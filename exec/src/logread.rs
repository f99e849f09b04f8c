//! Reading the stage logs back: the `exec:chunk` lines of `commands/NN-<slug>.ndjson` decoded
//! into the bytes the stage wrote, and complete lines of a growing ndjson file read forwards
//! (following a live log) or backwards (its tail). The writer side is `ndjson.rs`; keeping the
//! decoder beside it means one definition of the format. Users: the JUnit report (output
//! tails), `serve` (byte-exact download, live log tail) and the CLI's log verb.
//!
//! A log may be growing while it is read, or end in a torn line after a crash: only lines
//! ended by a newline are ever handed out, so a half-written chunk is never decoded.

use std::fs::File;
use std::io::Write;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;

/// A line longer than this is not one we wrote (chunks are far smaller): it is skipped rather
/// than held in memory.
pub const MAX_LINE: usize = 16 * 1024 * 1024;
/// Read size.
const BLOCK: usize = 64 * 1024;

/// One of a stage's output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// `stdout` or `stderr`, as the log spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    /// The stream named `name` (`stdout` or `stderr`).
    pub fn parse(name: &str) -> Option<Stream> {
        match name {
            "stdout" => Some(Stream::Stdout),
            "stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }
}

/// The output one `exec:chunk` line carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Which stream.
    pub stream: Stream,
    /// The attempt that wrote it (absent in logs of other tools).
    pub attempt: Option<u64>,
    /// The bytes, decoded (base64 chunks carry non-UTF-8 output).
    pub data: Vec<u8>,
}

#[derive(Deserialize)]
struct RawChunk<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    stream: &'a str,
    #[serde(default)]
    attempt: Option<u64>,
    /// Absent on `runner.ndjson`'s references (`ref`), which carry no data.
    #[serde(borrow, default)]
    data: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    encoding: Option<&'a str>,
}

/// The chunk of an `exec:chunk` line that carries its data; `None` for any other line,
/// a reference without data, or a line that does not parse.
pub fn parse_chunk(line: &[u8]) -> Option<Chunk> {
    parse_chunk_if(line, |_| true)
}

/// As [`parse_chunk`], for the streams `want` accepts only. Lines of other streams and lines
/// that are not chunks are told apart by a byte search, without a JSON parse: reading a long
/// log for one stream costs the parse of that stream's lines only.
pub fn parse_chunk_if(line: &[u8], want: impl Fn(Stream) -> bool) -> Option<Chunk> {
    let has = |m: &[u8]| line.windows(m.len()).any(|w| w == m);
    if !has(b"exec:chunk") {
        return None;
    }
    // The log is compact JSON and a quote inside `data` is escaped, so the raw key and value
    // only match the real field.
    let stream = if has(br#""stream":"stdout""#) {
        Stream::Stdout
    } else if has(br#""stream":"stderr""#) {
        Stream::Stderr
    } else {
        return None;
    };
    if !want(stream) {
        return None;
    }
    let raw: RawChunk<'_> = serde_json::from_slice(line).ok()?;
    if raw.kind != "exec:chunk" || raw.stream != stream.as_str() {
        return None;
    }
    let text = raw.data?;
    let data = if raw.encoding == Some("base64") {
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .ok()?
    } else {
        text.into_owned().into_bytes()
    };
    Some(Chunk {
        stream,
        attempt: raw.attempt,
        data,
    })
}

/// Calls `f(start, line)` for every complete line of `file` from byte `from` on (`line`
/// without its newline, `start` its offset), in order, until `f` breaks or the complete lines
/// run out. Returns the offset just past the last line handed to `f`: where to go on when the
/// file grows (a last line without its newline is left for then). Lines longer than
/// [`MAX_LINE`] are skipped.
pub fn lines_from(
    file: &File,
    from: u64,
    mut f: impl FnMut(u64, &[u8]) -> ControlFlow<()>,
) -> std::io::Result<u64> {
    // A follower mostly reads the few bytes appended since its last look: size the buffer by
    // what is there, not by the largest read.
    let len = file.metadata()?.len();
    if from >= len {
        return Ok(from);
    }
    let size = usize::try_from(len - from).map_or(BLOCK, |n| n.min(BLOCK));
    let mut block = vec![0u8; size];
    let mut carry: Vec<u8> = Vec::new();
    // Offset of `carry[0]` in the file, and whether the line in `carry` is being skipped.
    let mut carry_at = from;
    let mut skipping = false;
    let mut pos = from;
    let mut done = from;
    loop {
        let n = match file.read_at(&mut block, pos) {
            Ok(0) => return Ok(done),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut rest = &block[..n];
        let mut rest_at = pos;
        pos += n as u64;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            let end = rest_at + nl as u64 + 1;
            if skipping {
                skipping = false;
            } else if carry.is_empty() {
                if f(rest_at, &rest[..nl]).is_break() {
                    return Ok(end);
                }
            } else {
                carry.extend_from_slice(&rest[..nl]);
                let line = std::mem::take(&mut carry);
                if f(carry_at, &line).is_break() {
                    return Ok(end);
                }
            }
            done = end;
            rest = &rest[nl + 1..];
            rest_at = end;
            carry_at = end;
        }
        if !skipping {
            carry.extend_from_slice(rest);
            if carry.len() > MAX_LINE {
                carry = Vec::new();
                skipping = true;
            }
        }
    }
}

/// Calls `f(start, line)` for every complete line of `file` that ends at or before byte
/// `before`, newest first, until `f` breaks. Reads backwards in blocks, so a huge log costs only
/// the part `f` looks at. A line longer than [`MAX_LINE`] ends the walk (older lines are not
/// reached).
pub fn lines_before(
    file: &File,
    before: u64,
    mut f: impl FnMut(u64, &[u8]) -> ControlFlow<()>,
) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    let mut pos = before.min(len);
    // Only complete lines: drop a torn tail (bytes after the last newline before `pos`).
    let mut carry: Vec<u8> = Vec::new();
    let mut started = false;
    while pos > 0 {
        let start = pos.saturating_sub(BLOCK as u64);
        let mut block = vec![0u8; usize::try_from(pos - start).unwrap_or(0)];
        file.read_exact_at(&mut block, start)?;
        pos = start;
        block.extend_from_slice(&carry);
        carry = block;
        if !started {
            // The first newline from the end closes the newest complete line.
            match carry.iter().rposition(|b| *b == b'\n') {
                Some(nl) => {
                    carry.truncate(nl);
                    started = true;
                }
                None => continue,
            }
        }
        // Every line after the last newline in `carry` is complete; the part before it waits
        // for the previous block.
        while let Some(nl) = carry.iter().rposition(|b| *b == b'\n') {
            let line = carry.split_off(nl + 1);
            carry.truncate(nl);
            if f(pos + nl as u64 + 1, &line).is_break() {
                return Ok(());
            }
        }
        if carry.len() > MAX_LINE {
            return Ok(());
        }
    }
    if started {
        let _ = f(0, &carry);
    }
    Ok(())
}

/// What [`copy_stream`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamCopy {
    /// Bytes of the stream in the log (every attempt, concatenated).
    pub total: u64,
    /// Bytes written to the output.
    pub written: u64,
    /// The log ends with `command:end`: the stage wrote all it will.
    pub ended: bool,
}

/// Writes the bytes `stream` carries in the stage log at `log`, from byte `offset` of that
/// stream on and at most `limit` of them, to `out`, exactly as the stage wrote them. Attempts
/// of a retried stage follow each other.
pub fn copy_stream(
    log: &Path,
    stream: Stream,
    offset: u64,
    limit: Option<u64>,
    out: &mut dyn Write,
) -> std::io::Result<StreamCopy> {
    let file = File::open(log)?;
    let mut copy = StreamCopy::default();
    let mut failed: Option<std::io::Error> = None;
    let limit = limit.unwrap_or(u64::MAX);
    lines_from(&file, 0, |_, line| {
        // The writer puts `type` first (the peer's key order).
        if line.starts_with(br#"{"type":"command:end""#) {
            copy.ended = true;
            return ControlFlow::Continue(());
        }
        let Some(chunk) = parse_chunk_if(line, |s| s == stream) else {
            return ControlFlow::Continue(());
        };
        let at = copy.total;
        let len = chunk.data.len() as u64;
        copy.total += len;
        if at + len <= offset || copy.written >= limit {
            return ControlFlow::Continue(());
        }
        let from = usize::try_from(offset.saturating_sub(at)).unwrap_or(usize::MAX);
        let take = (len - from as u64).min(limit - copy.written);
        let piece = &chunk.data[from..from + take as usize];
        if let Err(e) = out.write_all(piece) {
            failed = Some(e);
            return ControlFlow::Break(());
        }
        copy.written += take;
        ControlFlow::Continue(())
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(copy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk_line(attempt: u64, stream: &str, data: &[u8]) -> String {
        match std::str::from_utf8(data) {
            Ok(s) => serde_json::json!({"type":"exec:chunk","attempt":attempt,"stream":stream,
                "bytes":data.len(),"data":s,"index":1})
            .to_string(),
            Err(_) => serde_json::json!({"type":"exec:chunk","attempt":attempt,"stream":stream,
                "bytes":data.len(),"data":base64::engine::general_purpose::STANDARD.encode(data),
                "encoding":"base64","index":1})
            .to_string(),
        }
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp");
        f.write_all(text.as_bytes()).expect("write");
        f
    }

    #[test]
    fn chunks_decode_text_base64_and_ignore_references_and_other_lines() {
        let text = chunk_line(2, "stderr", b"caf\xc3\xa9 \"q\"\n");
        assert_eq!(
            parse_chunk(text.as_bytes()),
            Some(Chunk {
                stream: Stream::Stderr,
                attempt: Some(2),
                data: "café \"q\"\n".into()
            })
        );
        let bin = chunk_line(1, "stdout", b"\xff\x00\xfe");
        assert_eq!(
            parse_chunk(bin.as_bytes()).map(|c| c.data),
            Some(vec![0xff, 0, 0xfe])
        );
        assert_eq!(
            parse_chunk_if(bin.as_bytes(), |s| s == Stream::Stderr),
            None
        );
        let reference = br#"{"type":"exec:chunk","attempt":1,"stream":"stdout","sequence":1,"bytes":3,"ref":"x.ndjson","index":1}"#;
        assert_eq!(parse_chunk(reference), None);
        assert_eq!(
            parse_chunk(br#"{"type":"exec:end","data":"exec:chunk"}"#),
            None
        );
        assert_eq!(
            parse_chunk(b"{\"type\":\"exec:chunk\",\"stream\":\"stdout\",\"da"),
            None
        );
    }

    #[test]
    fn forward_lines_stop_before_a_torn_line_and_resume_from_the_returned_offset() {
        let f = file("one\ntwo\nthr");
        let mut seen = Vec::new();
        let next = lines_from(f.as_file(), 0, |at, l| {
            seen.push((at, String::from_utf8_lossy(l).into_owned()));
            ControlFlow::Continue(())
        })
        .expect("read");
        assert_eq!(seen, [(0, "one".to_owned()), (4, "two".to_owned())]);
        assert_eq!(next, 8);
        let mut more = f.reopen().expect("reopen");
        std::io::Seek::seek(&mut more, std::io::SeekFrom::End(0)).expect("seek");
        more.write_all(b"ee\n").expect("append");
        let mut rest = Vec::new();
        let end = lines_from(f.as_file(), next, |at, l| {
            rest.push((at, String::from_utf8_lossy(l).into_owned()));
            ControlFlow::Continue(())
        })
        .expect("read");
        assert_eq!(rest, [(8, "three".to_owned())]);
        assert_eq!(end, 14);
    }

    #[test]
    fn forward_lines_cross_block_boundaries_and_break_where_asked() {
        let long = "x".repeat(BLOCK + 10);
        let f = file(&format!("a\n{long}\nb\nc\n"));
        let mut seen = Vec::new();
        let end = lines_from(f.as_file(), 0, |at, l| {
            seen.push((at, l.len()));
            if l == b"b" {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .expect("read");
        assert_eq!(seen, [(0, 1), (2, BLOCK + 10), (BLOCK as u64 + 13, 1)]);
        assert_eq!(end, BLOCK as u64 + 15);
    }

    #[test]
    fn backward_lines_skip_the_torn_tail_and_give_offsets() {
        let long = "y".repeat(BLOCK * 2);
        let f = file(&format!("a\n{long}\nb\ntorn"));
        let mut seen = Vec::new();
        lines_before(f.as_file(), u64::MAX, |at, l| {
            seen.push((at, l.len()));
            ControlFlow::Continue(())
        })
        .expect("read");
        let b_at = 2 + BLOCK as u64 * 2 + 1;
        assert_eq!(seen, [(b_at, 1), (2, BLOCK * 2), (0, 1)]);
        let mut before_b = Vec::new();
        lines_before(f.as_file(), b_at, |at, _| {
            before_b.push(at);
            ControlFlow::Continue(())
        })
        .expect("read");
        assert_eq!(before_b, [2, 0]);
    }

    #[test]
    fn copy_stream_is_byte_exact_from_any_offset_across_attempts() {
        let lines = [
            r#"{"type":"command:start","command":"x","index":1}"#.to_owned(),
            chunk_line(1, "stdout", b"ab\xff"),
            chunk_line(1, "stderr", b"noise"),
            chunk_line(2, "stdout", "cdé".as_bytes()),
            r#"{"type":"command:end","exit_code":0,"index":1}"#.to_owned(),
        ];
        let f = file(&(lines.join("\n") + "\n"));
        let all: &[u8] = b"ab\xffcd\xc3\xa9";
        for offset in 0..=all.len() as u64 + 1 {
            let mut out = Vec::new();
            let copy = copy_stream(f.path(), Stream::Stdout, offset, None, &mut out).expect("copy");
            assert_eq!(
                out,
                &all[(offset as usize).min(all.len())..],
                "offset {offset}"
            );
            assert_eq!(copy.total, all.len() as u64);
            assert!(copy.ended);
        }
        let mut out = Vec::new();
        let copy = copy_stream(f.path(), Stream::Stdout, 2, Some(3), &mut out).expect("copy");
        assert_eq!(out, b"\xffcd");
        assert_eq!(copy.written, 3);
        let mut err = Vec::new();
        copy_stream(f.path(), Stream::Stderr, 0, None, &mut err).expect("copy");
        assert_eq!(err, b"noise");
    }
}
