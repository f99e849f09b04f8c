//! Reading what `co_entry.py` wrote into a Ray job's driver log. Ray mixes its own lines into
//! that log and serves it as text (a WebSocket tail whose frames are not line aligned and
//! that replays from the start on every connect, or the whole file at once), so the wrapper
//! frames everything the stage produces as ASCII records:
//!
//! ```text
//! @@co:<nonce> <seq> <kind> <t_ms> <base64>\n      kind: b begin, o stdout, e stderr, x exit
//! ```
//!
//! The decoder buffers across pieces, splits on `\n`, *searches* each line for the marker (a
//! foreign partial line may be glued in front of a record), parses the fields strictly, and
//! keeps exactly the next expected `seq`: lower ones are replays (skipped), higher ones mean
//! records went missing (counted; the result is then not trusted as complete). It stops at
//! the `x` record.

use base64::Engine;
use serde::Deserialize;

/// The `b` record: where the stage runs.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Begin {
    /// Pid of the stage's `sh` on the node.
    #[serde(default)]
    pub pid: Option<i64>,
    /// Host name of the node.
    #[serde(default)]
    pub host: Option<String>,
    /// Working directory of the stage on the node.
    #[serde(default)]
    pub cwd: Option<String>,
}

/// The `x` record: how the stage ended, as the wrapper saw it (authoritative).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Exit {
    /// Exit status of the stage's shell when it exited.
    #[serde(default)]
    pub code: Option<i32>,
    /// Signal that ended the stage's shell.
    #[serde(default)]
    pub signal: Option<i32>,
    /// The wrapper's timeout fired.
    #[serde(default)]
    pub timed_out: bool,
    /// The wrapper was stopped (Ray's job stop, or it lost its parent).
    #[serde(default)]
    pub stopped: bool,
    /// The signal that stopped it (`None` when it lost its parent).
    #[serde(default)]
    pub stop_signal: Option<i32>,
    /// The wrapper's parent (Ray's supervisor) went away: the cluster lost the job.
    #[serde(default)]
    pub parent_lost: bool,
    /// The stage's command was started.
    #[serde(default)]
    pub started: bool,
    /// Why it could not start, when it did not.
    #[serde(default)]
    pub error: Option<String>,
    /// Records the wrapper wrote, this one included.
    #[serde(default)]
    pub records: u64,
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The stage started.
    Begin(Begin),
    /// Bytes of stdout.
    Stdout(Vec<u8>),
    /// Bytes of stderr.
    Stderr(Vec<u8>),
    /// The stage ended; nothing follows.
    Exit(Exit),
}

/// Decodes the records of one attempt from pieces of its driver log.
#[derive(Debug)]
pub struct Decoder {
    marker: String,
    /// An incomplete last line, kept for the next piece.
    partial: String,
    next_seq: u64,
    /// The `x` record was seen.
    done: bool,
    /// Records skipped because they were seen before (a replay).
    pub duplicates: u64,
    /// Times a record was missing (a higher `seq` than expected).
    pub gaps: u64,
    /// Lines with the marker that did not parse.
    pub malformed: u64,
}

impl Decoder {
    /// A decoder for the records of `nonce`.
    pub fn new(nonce: &str) -> Decoder {
        Decoder {
            marker: format!("@@co:{nonce} "),
            partial: String::new(),
            next_seq: 0,
            done: false,
            duplicates: 0,
            gaps: 0,
            malformed: 0,
        }
    }

    /// True once the `x` record was decoded.
    pub fn done(&self) -> bool {
        self.done
    }

    /// Records decoded so far (the next expected `seq`).
    pub fn records(&self) -> u64 {
        self.next_seq
    }

    /// Feeds a piece of log text; hands every new record of its complete lines to `out`.
    pub fn feed(&mut self, text: &str, out: &mut impl FnMut(Record)) {
        if self.done {
            return;
        }
        self.partial.push_str(text);
        let Some(last_nl) = self.partial.rfind('\n') else {
            return;
        };
        let complete: String = self.partial.drain(..=last_nl).collect();
        for line in complete.split('\n') {
            self.line(line, out);
            if self.done {
                self.partial.clear();
                return;
            }
        }
    }

    /// The text ended (the whole log was fed): a last line without `\n` can still be a record.
    pub fn finish(&mut self, out: &mut impl FnMut(Record)) {
        let rest = std::mem::take(&mut self.partial);
        if !rest.is_empty() && !self.done {
            self.line(&rest, out);
        }
    }

    /// The text starts again from the beginning (a reconnected tail): an incomplete line
    /// kept from before is dropped; records already seen are skipped by their `seq`.
    pub fn restart(&mut self) {
        self.partial.clear();
    }

    fn line(&mut self, line: &str, out: &mut impl FnMut(Record)) {
        let Some(at) = line.find(&self.marker) else {
            return;
        };
        let Some((seq, kind, payload)) = parse_fields(&line[at + self.marker.len()..]) else {
            self.malformed += 1;
            return;
        };
        if seq < self.next_seq {
            self.duplicates += 1;
            return;
        }
        if seq > self.next_seq {
            self.gaps += 1;
        }
        self.next_seq = seq + 1;
        let record = match kind {
            "o" => Record::Stdout(payload),
            "e" => Record::Stderr(payload),
            "b" => Record::Begin(serde_json::from_slice(&payload).unwrap_or_default()),
            "x" => {
                self.done = true;
                match serde_json::from_slice(&payload) {
                    Ok(x) => Record::Exit(x),
                    Err(_) => {
                        self.malformed += 1;
                        Record::Exit(Exit::default())
                    }
                }
            }
            _ => {
                self.malformed += 1;
                return;
            }
        };
        out(record);
    }
}

/// `<seq> <kind> <t_ms> <base64>`, strictly: four fields, numbers, one known kind letter,
/// valid base64.
fn parse_fields(rest: &str) -> Option<(u64, &str, Vec<u8>)> {
    let mut f = rest.trim_end_matches('\r').split(' ');
    let (seq, kind, t_ms, b64) = (f.next()?, f.next()?, f.next()?, f.next()?);
    if f.next().is_some() || !matches!(kind, "b" | "o" | "e" | "x") {
        return None;
    }
    t_ms.parse::<u64>().ok()?;
    let payload = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some((seq.parse().ok()?, kind, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(nonce: &str, seq: u64, kind: &str, payload: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(payload);
        format!("@@co:{nonce} {seq} {kind} 5 {b64}\n")
    }

    fn decode(pieces: &[&str]) -> (Vec<Record>, Decoder) {
        let mut d = Decoder::new("N1");
        let mut got = Vec::new();
        for p in pieces {
            d.feed(p, &mut |r| got.push(r));
        }
        d.finish(&mut |r| got.push(r));
        (got, d)
    }

    #[test]
    fn records_split_anywhere_glued_to_foreign_text_and_replayed_decode_once() {
        let log = [
            "2026-12-01 INFO job_manager.py -- Runtime env is setting up.\n".to_owned(),
            rec("N1", 0, "b", br#"{"pid":7,"host":"node-a","cwd":"/w"}"#),
            rec("N1", 1, "o", b"out\xff\xfe"),
            rec("N1", 2, "e", b"err\n"),
            rec("N1", 3, "x", br#"{"v":1,"code":3,"signal":null,"timed_out":false,"stopped":false,"started":true,"records":4}"#),
        ]
        .concat();
        // Ray's own line glued in front of a record (it writes without a newline first).
        let glued = log.replacen("@@co:N1 1 ", "partial line@@co:N1 1 ", 1);
        // Cut at every position: frames are not line aligned.
        for cut in [1, 17, 90, glued.len() - 3] {
            let (a, b) = glued.split_at(cut);
            // A reconnect replays from the start.
            let (got, d) = decode(&[a, b, &glued]);
            assert_eq!(got.len(), 4, "cut {cut}: {got:?}");
            assert_eq!(
                got[0],
                Record::Begin(Begin {
                    pid: Some(7),
                    host: Some("node-a".into()),
                    cwd: Some("/w".into())
                })
            );
            assert_eq!(got[1], Record::Stdout(b"out\xff\xfe".to_vec()));
            assert_eq!(got[2], Record::Stderr(b"err\n".to_vec()));
            let Record::Exit(x) = &got[3] else {
                panic!("exit last")
            };
            assert_eq!((x.code, x.records, x.started), (Some(3), 4, true));
            assert!(d.done() && d.gaps == 0 && d.malformed == 0);
        }
    }

    #[test]
    fn other_nonces_bad_fields_and_gaps_are_counted_not_trusted() {
        let text = [
            rec("OTHER", 0, "o", b"not ours"),
            "@@co:N1 0 o 5 !!notbase64\n".to_owned(),
            "@@co:N1 0 q 5 AA==\n".to_owned(),
            rec("N1", 0, "o", b"a"),
            rec("N1", 2, "o", b"c"),
        ]
        .concat();
        let (got, d) = decode(&[&text]);
        assert_eq!(
            got,
            [Record::Stdout(b"a".to_vec()), Record::Stdout(b"c".to_vec())]
        );
        assert_eq!((d.malformed, d.gaps, d.done()), (2, 1, false));
    }

    #[test]
    fn a_last_line_without_newline_is_read_at_the_end() {
        let text = rec("N1", 0, "o", b"z");
        let (got, _) = decode(&[text.trim_end()]);
        assert_eq!(got, [Record::Stdout(b"z".to_vec())]);
        // ... but a restart drops a partial line rather than gluing the replay onto it.
        let mut d = Decoder::new("N1");
        let mut n = 0;
        d.feed(&text[..10], &mut |_| n += 1);
        d.restart();
        d.feed(&text, &mut |_| n += 1);
        assert_eq!(n, 1);
    }
}
