//! How a stream's raw bytes become `exec:chunk` payloads: UTF-8 text where the bytes are valid
//! UTF-8, base64 where they are not, never cutting a code point in two, so that concatenating
//! the payloads of a stream (decoding the base64 ones) gives back its bytes exactly.

/// Shortest run of valid UTF-8 inside otherwise invalid bytes that becomes its own text piece.
/// Shorter runs are folded into the surrounding binary piece: every piece costs a log line in
/// both logs (~400 bytes), so random binary output must not turn into one line per byte. With
/// this floor a 64 KiB read makes at most ~32 pieces.
const MIN_TEXT_RUN: usize = 4 * 1024;

/// One payload of a chunk event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// Valid UTF-8, logged as JSON text.
    Text(&'a str),
    /// Bytes that are not valid UTF-8 (possibly with short valid runs inside), logged as base64.
    Binary(&'a [u8]),
}

/// Length of an incomplete but still valid UTF-8 sequence at the end of `buf` (0 to 3 bytes):
/// the start of a code point whose remaining bytes have not been read yet.
fn incomplete_suffix(buf: &[u8]) -> usize {
    // A code point is at most 4 bytes, so an unfinished one is at most 3 bytes long; the
    // shortest suffix that is an unfinished sequence ("unexpected end" for the decoder) wins.
    (1..=buf.len().min(3))
        .find(|&n| match std::str::from_utf8(&buf[buf.len() - n..]) {
            Err(e) => e.valid_up_to() == 0 && e.error_len().is_none(),
            Ok(_) => false,
        })
        .unwrap_or(0)
}

/// Splits `buf` into pieces and hands them to `emit` in order. Returns how many bytes of `buf`
/// were emitted; the rest (only when `last` is false) is an unfinished code point that the
/// caller keeps and prepends to the next read. With `last` (the stream ended) everything is
/// emitted, an unfinished sequence as binary.
pub(crate) fn split_pieces<E>(
    buf: &[u8],
    last: bool,
    mut emit: impl FnMut(Piece<'_>) -> Result<(), E>,
) -> Result<usize, E> {
    let end = if last {
        buf.len()
    } else {
        buf.len() - incomplete_suffix(buf)
    };
    let body = &buf[..end];
    // Start of binary bytes seen but not emitted yet.
    let mut binary_from: Option<usize> = None;
    let mut offset = 0;
    for part in body.utf8_chunks() {
        let (valid, invalid) = (part.valid(), part.invalid());
        // A valid run is text when it is long, or when it is all that is left and nothing
        // binary precedes it (the common case: a whole read of valid UTF-8).
        let as_text = !valid.is_empty()
            && (valid.len() >= MIN_TEXT_RUN || (binary_from.is_none() && invalid.is_empty()));
        if as_text {
            if let Some(from) = binary_from.take() {
                emit(Piece::Binary(&body[from..offset]))?;
            }
            emit(Piece::Text(valid))?;
        } else if !valid.is_empty() {
            binary_from.get_or_insert(offset);
        }
        if !invalid.is_empty() {
            binary_from.get_or_insert(offset + valid.len());
        }
        offset += valid.len() + invalid.len();
    }
    if let Some(from) = binary_from {
        emit(Piece::Binary(&body[from..]))?;
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `reads` the way `child.rs` does (keeping unconsumed bytes for the next read) and
    /// returns the reassembled bytes and a short description of every piece.
    fn split(reads: &[&[u8]]) -> (Vec<u8>, Vec<String>) {
        let mut pending = Vec::new();
        let mut out = Vec::new();
        let mut kinds = Vec::new();
        for (i, read) in reads.iter().enumerate() {
            pending.extend_from_slice(read);
            let consumed = split_pieces::<()>(&pending, i + 1 == reads.len(), |p| {
                match p {
                    Piece::Text(t) => {
                        out.extend_from_slice(t.as_bytes());
                        kinds.push(format!("t:{}", t.len()));
                    }
                    Piece::Binary(b) => {
                        out.extend_from_slice(b);
                        kinds.push(format!("b:{}", b.len()));
                    }
                }
                Ok(())
            })
            .expect("no error");
            pending.drain(..consumed);
        }
        assert!(pending.is_empty(), "the last read leaves nothing behind");
        (out, kinds)
    }

    #[test]
    fn split_code_point_is_carried_not_cut() {
        let euro = "€".as_bytes();
        let (bytes, kinds) = split(&[&[b'a', euro[0]], &euro[1..2], &euro[2..], b"z"]);
        assert_eq!(bytes, "a€z".as_bytes());
        assert_eq!(kinds, ["t:1", "t:3", "t:1"]);
        let crab = "🦀".as_bytes();
        let (bytes, kinds) = split(&[&crab[..3], &crab[3..]]);
        assert_eq!((bytes.as_slice(), kinds), (crab, vec!["t:4".to_owned()]));
    }

    #[test]
    fn invalid_bytes_become_one_binary_piece_with_short_text_folded_in() {
        let (bytes, kinds) = split(&[b"ok\xff\xfe\xfdok"]);
        assert_eq!(bytes, b"ok\xff\xfe\xfdok");
        assert_eq!(kinds, ["b:7"]);
        // An unfinished sequence at the very end of the stream is binary, not carried forever.
        let (bytes, kinds) = split(&[b"end\xe2\x82"]);
        assert_eq!(bytes, b"end\xe2\x82");
        assert_eq!(kinds, ["b:5"]);
        // A bad continuation is not "unfinished": it is not carried.
        assert_eq!(incomplete_suffix(b"a\xe2\x28"), 0);
        assert_eq!(incomplete_suffix(b"a\xf0\x9f\xa6"), 3);
    }

    #[test]
    fn long_text_around_invalid_bytes_stays_text() {
        let text = "x".repeat(MIN_TEXT_RUN);
        let mut data = text.as_bytes().to_vec();
        data.extend_from_slice(b"\xff");
        data.extend_from_slice(text.as_bytes());
        data.extend_from_slice(b"\xc0tail");
        let (bytes, kinds) = split(&[&data]);
        assert_eq!(bytes, data);
        assert_eq!(kinds, ["t:4096", "b:1", "t:4096", "b:5"]);
    }

    #[test]
    fn random_binary_makes_few_pieces() {
        // Pseudo-random bytes: mostly invalid, with short valid runs everywhere.
        let mut x = 0x2545_f491_u32;
        let data: Vec<u8> = (0..65536)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x.to_le_bytes()[0]
            })
            .collect();
        let (bytes, kinds) = split(&[&data]);
        assert_eq!(bytes, data);
        assert_eq!(kinds.len(), 1);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_any_reads_round_trip(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= data.len()).collect();
            cuts.extend([0, data.len()]);
            cuts.sort_unstable();
            cuts.dedup();
            let mut reads: Vec<&[u8]> = cuts.windows(2).map(|w| &data[w[0]..w[1]]).collect();
            if reads.is_empty() {
                reads.push(&data);
            }
            let (bytes, _) = split(&reads);
            proptest::prop_assert_eq!(bytes, data);
        }

        #[test]
        fn valid_text_is_never_binary(text in "\\PC{0,80}", cuts in proptest::collection::vec(0usize..400, 0..6)) {
            let data = text.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= data.len()).collect();
            cuts.extend([0, data.len()]);
            cuts.sort_unstable();
            cuts.dedup();
            let mut reads: Vec<&[u8]> = cuts.windows(2).map(|w| &data[w[0]..w[1]]).collect();
            if reads.is_empty() {
                reads.push(data);
            }
            let (bytes, kinds) = split(&reads);
            proptest::prop_assert_eq!(bytes.as_slice(), data);
            proptest::prop_assert!(kinds.iter().all(|k| k.starts_with("t:")));
        }
    }
}
