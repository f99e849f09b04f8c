//! Bounded in-memory capture of one stream: the last `cap` bytes, the total, and whether
//! anything was dropped. Memory stays at `cap` whatever the output size.

use crate::outcome::Capture;

/// Keeps the tail of a stream.
#[derive(Debug)]
pub(crate) struct Tail {
    buf: Vec<u8>,
    cap: usize,
    total: u64,
}

impl Tail {
    pub(crate) fn new(cap: usize) -> Tail {
        Tail {
            buf: Vec::with_capacity(cap.min(64 * 1024)),
            cap,
            total: 0,
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.cap == 0 {
            return;
        }
        if bytes.len() >= self.cap {
            self.buf.clear();
            self.buf.extend_from_slice(&bytes[bytes.len() - self.cap..]);
            return;
        }
        let overflow = (self.buf.len() + bytes.len()).saturating_sub(self.cap);
        if overflow > 0 {
            self.buf.drain(..overflow);
        }
        self.buf.extend_from_slice(bytes);
    }

    pub(crate) fn finish(self) -> Capture {
        Capture {
            truncated: self.total > self.buf.len() as u64,
            tail: self.buf,
            total_bytes: self.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Tail;

    #[test]
    fn keeps_only_the_tail_and_counts_everything() {
        let mut t = Tail::new(8);
        for chunk in [&b"hello "[..], b"world", b"!", b"0123456789abcdef"] {
            t.push(chunk);
        }
        t.push(b"XY");
        let c = t.finish();
        assert_eq!(c.tail, b"89abcdefXY"[2..].to_vec());
        assert_eq!(c.total_bytes, 30);
        assert!(c.truncated);
        let mut small = Tail::new(64);
        small.push(b"abc");
        let c = small.finish();
        assert_eq!((c.tail.as_slice(), c.truncated), (&b"abc"[..], false));
    }
}
