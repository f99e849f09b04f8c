//! Turning a stage's output into `exec:chunk` events, the same way for every executor: UTF-8
//! text where the bytes are valid, base64 where they are not, never a code point cut in two,
//! one `sequence` shared by both streams, a bounded tail per stream, and the first
//! `max_chunk_events` chunks kept in memory. A local process group and a Ray job produce
//! identical log lines for identical output because both go through [`Emitter`]. With secrets
//! (`ExecSpec::secrets`), each stream first passes its [`Scrubber`]: what is logged, kept in
//! the tail or retained is the masked output, so a value never reaches the log.

use base64::Engine;

use crate::capture::Tail;
use crate::chunk::{split_pieces, Piece};
use crate::errors::ExecError;
use crate::ndjson::{Chunk, StageLog};
use crate::outcome::ChunkRecord;
use crate::redact::{Scrubber, Secrets};

/// Writes the chunk events of one attempt and keeps count.
pub(crate) struct Emitter<'a> {
    pub(crate) log: &'a mut StageLog,
    pub(crate) correlation_id: String,
    attempt: u32,
    /// Shared by both streams, from 1.
    pub(crate) sequence: u64,
    max_retained: usize,
    pub(crate) retained: Vec<ChunkRecord>,
    pub(crate) dropped: u64,
    /// Reused base64 buffer.
    encoded: String,
    /// The values to mask, if any.
    secrets: Option<Secrets>,
    /// The streaming matchers of stdout and stderr.
    scrub: [Scrubber; 2],
    /// Per stream, masked output not logged yet: an unfinished code point between calls.
    clean: [Vec<u8>; 2],
}

impl<'a> Emitter<'a> {
    /// An emitter for attempt `attempt` whose events carry `correlation_id`.
    pub(crate) fn new(
        log: &'a mut StageLog,
        correlation_id: String,
        attempt: u32,
        max_retained: usize,
    ) -> Emitter<'a> {
        Emitter {
            log,
            correlation_id,
            attempt,
            sequence: 0,
            max_retained,
            retained: Vec::new(),
            dropped: 0,
            encoded: String::new(),
            secrets: None,
            scrub: Default::default(),
            clean: Default::default(),
        }
    }

    /// Masks `secrets` in everything this emitter logs from now on.
    pub(crate) fn redacting(mut self, secrets: Option<Secrets>) -> Self {
        self.secrets = secrets;
        self
    }

    /// Values masked so far, both streams together.
    pub(crate) fn redactions(&self) -> u64 {
        self.scrub.iter().map(|s| s.count).sum()
    }

    /// Logs what `pending` holds of stream `name`: everything when `last` (the stream ended),
    /// otherwise everything but an unfinished code point at the end, which stays in `pending`
    /// for the next read. What was logged is added to `tail`.
    pub(crate) fn emit(
        &mut self,
        name: &'static str,
        pending: &mut Vec<u8>,
        last: bool,
        tail: &mut Tail,
    ) -> Result<(), ExecError> {
        if let Some(secrets) = self.secrets.take() {
            let result = self.emit_masked(&secrets, name, pending, last, tail);
            self.secrets = Some(secrets);
            return result;
        }
        if pending.is_empty() {
            return Ok(());
        }
        let consumed = split_pieces(pending, last, |piece| self.piece(name, piece))?;
        tail.push(&pending[..consumed]);
        pending.drain(..consumed);
        Ok(())
    }

    /// [`emit`](Self::emit) through the stream's scrubber: all of `pending` goes into it, and
    /// what it decided (masked) is logged like unmasked output would be. Both kinds of carried
    /// bytes (a possible value's start in the scrubber, then an unfinished code point in the
    /// stream's `clean` buffer, in that order in the stream) stay in memory.
    fn emit_masked(
        &mut self,
        secrets: &Secrets,
        name: &'static str,
        pending: &mut Vec<u8>,
        last: bool,
        tail: &mut Tail,
    ) -> Result<(), ExecError> {
        let which = usize::from(name != "stdout");
        let scrub = &mut self.scrub[which];
        if pending.is_empty() && !(last && (scrub.holding() || !self.clean[which].is_empty())) {
            return Ok(());
        }
        let mut clean = std::mem::take(&mut self.clean[which]);
        scrub.feed(secrets, pending, last, &mut clean);
        pending.clear();
        let consumed = split_pieces(&clean, last, |piece| self.piece(name, piece));
        if let Ok(n) = consumed {
            tail.push(&clean[..n]);
            clean.drain(..n);
        }
        self.clean[which] = clean;
        consumed.map(|_| ())
    }

    /// Logs one piece as one `exec:chunk` event.
    pub(crate) fn piece(
        &mut self,
        stream: &'static str,
        piece: Piece<'_>,
    ) -> Result<(), ExecError> {
        self.sequence += 1;
        let raw = match piece {
            Piece::Text(t) => t.as_bytes(),
            Piece::Binary(b) => b,
        };
        if self.retained.len() < self.max_retained {
            self.retained.push(ChunkRecord {
                stream,
                sequence: self.sequence,
                data: raw.to_vec(),
            });
        } else {
            self.dropped += 1;
        }
        let mut encoded = std::mem::take(&mut self.encoded);
        let (data, base64) = match piece {
            Piece::Text(t) => (t, false),
            Piece::Binary(b) => {
                encoded.clear();
                base64::engine::general_purpose::STANDARD.encode_string(b, &mut encoded);
                (encoded.as_str(), true)
            }
        };
        let written = self.log.write_chunk(&Chunk {
            correlation_id: &self.correlation_id,
            attempt: self.attempt,
            stream,
            sequence: self.sequence,
            bytes: raw.len(),
            data,
            base64,
        });
        self.encoded = encoded;
        written
    }
}

/// A random UUID-v4-shaped id (the peer's `correlation_id` / `session_id`).
pub(crate) fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    shared_manifest::entropy::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::uuid_v4;

    #[test]
    fn ids_look_like_uuid_v4() {
        let id = uuid_v4();
        let parts: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(uuid_v4(), id);
    }
}
