//! When the persister writes an update nobody waits for: paced by what writes cost, so that
//! the bytes written grow with the run, not with its square.
//!
//! A write rewrites the whole document, whose size grows with the run. Writing once per update
//! (once per stage end) therefore costs O(n²) bytes for n stages. Instead, after a write that
//! took `cost` (rendering, the group commit's syncs and the file writes, all of it), the next
//! one waits for [`PACE`] × `cost`: writing takes at most a tenth of the wall time whatever
//! the document's size, and the number of writes falls as the document grows. The gap is at
//! least [`MIN_GAP`], so that a burst of quick updates (a quick stage's start and end, several
//! stages ending at once) shares one write.
//!
//! A record that is cheap to write but large (a fast disk, thousands of stages) is also held to
//! [`RATE`] bytes per second, so that the bytes written stay a small multiple of its final size.
//!
//! Staleness: an update is on disk at most `gap + cost` after it was applied, where
//! `gap = min(MAX_GAP, max(MIN_GAP, PACE × cost, bytes / RATE))`. While one write costs at most 25 ms (a
//! manifest of a few thousand stages on an ordinary disk), that is at most 250 ms. A write's
//! cost includes the group commit's syncs of the stage logs that ended since the last one, so
//! on a busy run it can reach seconds; [`MAX_GAP`] bounds the gap anyway: the record on disk
//! is never more than a second plus one write behind (measured without it: 6.5 s at 1000
//! stages, 22 s at 4000, i.e. thousands of stages to run again after a `kill -9`). Barriers
//! (`flush`, `inspect`, `close`) do not wait for the pace: someone is waiting for durability.

use std::time::Duration;

use tokio::time::Instant;

/// The gap after a write, in multiples of what the write cost: at most a tenth of the time
/// goes to writing.
pub const PACE: u32 = 9;
/// The shortest gap between two paced writes: lets a burst of updates share one write.
pub const MIN_GAP: Duration = Duration::from_millis(25);
/// The longest gap between two paced writes: bounds how far the record on disk may lag.
pub const MAX_GAP: Duration = Duration::from_secs(1);
/// Bytes per second of paced writes at most (below [`MAX_GAP`]): a large record is written
/// less often even when writing it is cheap, so that the bytes written stay within a small
/// multiple of the final size (about the run's seconds / 2 for a record over 1 MiB).
pub const RATE: u64 = 1 << 20;

/// The pace of one persister's writes.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Pacer {
    /// When the last write ended, what it cost, and how many bytes it wrote.
    last: Option<(Instant, Duration, u64)>,
}

impl Pacer {
    /// The gap the last write asks for.
    pub(crate) fn gap(&self) -> Duration {
        let (cost, bytes) = self.last.map_or((Duration::ZERO, 0), |(_, c, b)| (c, b));
        let by_size = Duration::from_micros(bytes.saturating_mul(1_000_000) / RATE);
        (cost * PACE).max(by_size).clamp(MIN_GAP, MAX_GAP)
    }

    /// When to write a document that has had unwritten updates since `dirty_since`: one gap
    /// after the last write, and not before a burst starting at `dirty_since` had
    /// [`MIN_GAP`] to gather.
    pub(crate) fn due(&self, dirty_since: Instant) -> Instant {
        let gathered = dirty_since + MIN_GAP;
        match self.last {
            Some((end, _, _)) => gathered.max(end + self.gap()),
            None => gathered,
        }
    }

    /// Records a write that ended at `end`, took `cost` and wrote `bytes`.
    pub(crate) fn wrote(&mut self, end: Instant, cost: Duration, bytes: u64) {
        self.last = Some((end, cost, bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_first_burst_gathers_for_the_minimum_gap() {
        let t0 = Instant::now();
        let p = Pacer::default();
        assert_eq!(p.due(t0), t0 + MIN_GAP);
    }

    #[test]
    fn cheap_writes_are_spaced_by_the_minimum_gap() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        p.wrote(t0, MS, 0);
        assert_eq!(p.gap(), MIN_GAP);
        // Dirty right after the write: the burst gathers for the minimum gap.
        assert_eq!(p.due(t0 + MS), t0 + MS + MIN_GAP);
        // Dirty long after: the burst still gathers for the minimum gap.
        let later = t0 + 10 * MIN_GAP;
        assert_eq!(p.due(later), later + MIN_GAP);
    }

    #[test]
    fn a_large_cheap_record_is_written_at_the_byte_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        // Half a MiB written in 2 ms: the size, not the cost, sets the gap.
        p.wrote(t0, 2 * MS, RATE / 2);
        assert_eq!(p.gap(), 500 * MS);
        // Beyond a second's worth of bytes, the staleness bound wins.
        p.wrote(t0, 2 * MS, 3 * RATE);
        assert_eq!(p.gap(), MAX_GAP);
    }

    #[test]
    fn the_gap_never_exceeds_the_maximum() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        // A write that synced many stage logs: seconds.
        p.wrote(t0, 2500 * MS, 0);
        assert_eq!(p.gap(), MAX_GAP);
        assert_eq!(p.due(t0), t0 + MAX_GAP);
    }

    #[test]
    fn expensive_writes_take_at_most_a_tenth_of_the_time() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        p.wrote(t0, 40 * MS, 0);
        assert_eq!(p.gap(), 360 * MS);
        let due = p.due(t0);
        assert_eq!(due, t0 + 360 * MS);
        // Writing 40 ms, then waiting 360 ms: 10 % of the time.
        let share = 40.0 / (due - t0 + 40 * MS).as_millis() as f64;
        assert!((share - 0.1).abs() < 1e-9, "{share}");
    }
}
