//! Secrets redaction: the values of a stage's secret variables are replaced by `***` in its
//! output before a single byte of it is logged, kept in memory or summarised.
//!
//! [`Secrets`] is the set of values (each at least [`MIN_SECRET_LEN`] bytes: shorter values
//! such as `1` or `yes` would mask ordinary output and are left alone, as the README says),
//! matched with one Aho-Corasick automaton, leftmost-longest, so a value that contains another
//! is masked whole. [`Scrubber`] runs it over one stream as it arrives: output can split a
//! value across two reads, so the last `longest - 1` bytes of what has arrived stay behind (in
//! memory only) until the next read or the stream's end shows whether they start a value.
//! Output is therefore masked before it reaches any file, temp file or buffer that outlives
//! the read.
//!
//! Why the carry is enough: a match that starts before the boundary `len - (longest - 1)` has
//! at least `longest` bytes after its start in the buffer, so every value that could start
//! there is fully visible; leftmost-longest over the buffer then picks what it would pick over
//! the whole stream. Matches starting past the boundary are decided on the next read.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// What a secret value becomes.
pub const MASK: &str = "***";

/// Values shorter than this are not redacted.
pub const MIN_SECRET_LEN: usize = 4;

/// The secret values of one stage, ready to match.
#[derive(Debug, Clone)]
pub struct Secrets {
    matcher: AhoCorasick,
    /// Length of the longest value, in bytes.
    longest: usize,
}

impl Secrets {
    /// The matcher for `values`, ignoring values shorter than [`MIN_SECRET_LEN`] bytes and
    /// duplicates; `None` when no value is left (then nothing is redacted, at no cost).
    pub fn new<I, V>(values: I) -> Option<Secrets>
    where
        I: IntoIterator<Item = V>,
        V: AsRef<[u8]>,
    {
        let mut kept: Vec<Vec<u8>> = values
            .into_iter()
            .map(|v| v.as_ref().to_vec())
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .collect();
        kept.sort();
        kept.dedup();
        let longest = kept.iter().map(Vec::len).max()?;
        // Building fails only for automata too big for its state ids (gigabytes of patterns);
        // the values are environment variables, bounded by the kernel's argument limit.
        let matcher = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&kept)
            .ok()?;
        Some(Secrets { matcher, longest })
    }

    /// How many bytes a stream keeps back between reads.
    fn carry(&self) -> usize {
        self.longest - 1
    }

    /// `text` with every value masked, and how many were.
    pub fn redact_str(&self, text: &str) -> (String, u64) {
        let mut count = 0;
        let mut out = String::with_capacity(text.len());
        let mut pos = 0;
        for m in self.matcher.find_iter(text) {
            // Values are matched as bytes; a value that is not whole code points of `text`
            // cannot be cut out of a `str`, so it is masked through the byte path below.
            if !text.is_char_boundary(m.start()) || !text.is_char_boundary(m.end()) {
                let (bytes, n) = self.redact_bytes(text.as_bytes());
                return (String::from_utf8_lossy(&bytes).into_owned(), n);
            }
            out.push_str(&text[pos..m.start()]);
            out.push_str(MASK);
            pos = m.end();
            count += 1;
        }
        out.push_str(&text[pos..]);
        (out, count)
    }

    /// `bytes` with every value masked, and how many were.
    pub fn redact_bytes(&self, bytes: &[u8]) -> (Vec<u8>, u64) {
        let mut out = Vec::with_capacity(bytes.len());
        let mut pos = 0;
        let mut count = 0;
        for m in self.matcher.find_iter(bytes) {
            out.extend_from_slice(&bytes[pos..m.start()]);
            out.extend_from_slice(MASK.as_bytes());
            pos = m.end();
            count += 1;
        }
        out.extend_from_slice(&bytes[pos..]);
        (out, count)
    }
}

/// The streaming matcher of one output stream.
#[derive(Debug, Default)]
pub(crate) struct Scrubber {
    /// Bytes that arrived but may still be the start of a value (at most `longest - 1`).
    held: Vec<u8>,
    /// Masks made so far.
    pub(crate) count: u64,
}

impl Scrubber {
    /// Takes `input` (the stream's next bytes), appends what is decided of it to `clean`, with
    /// values masked, and keeps the undecided end; with `last` (the stream ended) everything
    /// is decided.
    pub(crate) fn feed(
        &mut self,
        secrets: &Secrets,
        input: &[u8],
        last: bool,
        clean: &mut Vec<u8>,
    ) {
        // Without held bytes the input is scanned where it is; otherwise behind them.
        let joined;
        let buf: &[u8] = if self.held.is_empty() {
            input
        } else {
            self.held.extend_from_slice(input);
            joined = std::mem::take(&mut self.held);
            &joined
        };
        let boundary = if last {
            buf.len()
        } else {
            buf.len().saturating_sub(secrets.carry())
        };
        let mut pos = 0;
        for m in secrets.matcher.find_iter(buf) {
            if m.start() >= boundary {
                break;
            }
            clean.extend_from_slice(&buf[pos..m.start()]);
            clean.extend_from_slice(MASK.as_bytes());
            pos = m.end();
            self.count += 1;
        }
        let decided = pos.max(boundary);
        clean.extend_from_slice(&buf[pos..decided]);
        self.held.clear();
        self.held.extend_from_slice(&buf[decided..]);
    }

    /// Bytes held back, waiting for more output.
    pub(crate) fn holding(&self) -> bool {
        !self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{Scrubber, Secrets};

    fn stream(secrets: &Secrets, reads: &[&[u8]]) -> (Vec<u8>, u64) {
        let mut s = Scrubber::default();
        let mut clean = Vec::new();
        for (i, r) in reads.iter().enumerate() {
            s.feed(secrets, r, i + 1 == reads.len(), &mut clean);
        }
        (clean, s.count)
    }

    #[test]
    fn short_values_and_empty_sets_redact_nothing() {
        assert!(Secrets::new(["abc", "", "xy"]).is_none());
        let s = Secrets::new(["abc", "abcd"]).expect("one value is long enough");
        assert_eq!(s.redact_str("abc abcd"), ("abc ***".to_owned(), 1));
    }

    #[test]
    fn a_value_split_across_reads_is_masked() {
        let s = Secrets::new(["hunter22", "s3cr3t-value"]).expect("values");
        let (clean, n) = stream(&s, &[b"x hun", b"ter", b"22 y s3cr3t-", b"value", b""]);
        assert_eq!((clean.as_slice(), n), (&b"x *** y ***"[..], 2));
        // A prefix of a value at the very end is output, not a value.
        let (clean, n) = stream(&s, &[b"hunter2", b""]);
        assert_eq!((clean.as_slice(), n), (&b"hunter2"[..], 0));
    }

    #[test]
    fn the_longest_overlapping_value_wins() {
        let s = Secrets::new(["abcd", "abcdef"]).expect("values");
        let (clean, n) = stream(&s, &[b"..abcd", b"ef..abcd", b"", b".."]);
        assert_eq!((clean.as_slice(), n), (&b"..***..***.."[..], 2));
    }

    proptest! {
        /// However the output is cut into reads, the streamed result is the one-shot result.
        #[test]
        fn streaming_equals_one_shot(
            values in proptest::collection::vec("[ab]{4,7}", 1..4),
            text in "[abc]{0,80}",
            cuts in proptest::collection::vec(0usize..80, 0..8),
        ) {
            let s = Secrets::new(&values).expect("values of 4+ bytes");
            let bytes = text.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= bytes.len()).collect();
            cuts.sort_unstable();
            let mut reads = Vec::new();
            let mut from = 0;
            for c in cuts {
                reads.push(&bytes[from..c]);
                from = c;
            }
            reads.push(&bytes[from..]);
            let (clean, n) = stream(&s, &reads);
            let (expected, m) = s.redact_bytes(bytes);
            prop_assert_eq!(clean, expected);
            prop_assert_eq!(n, m);
        }
    }
}
