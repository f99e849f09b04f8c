//! Random numbers for ids, tokens and temp-file names that never wait for the kernel's
//! entropy pool.
//!
//! `rand`'s thread RNG seeds itself with `getrandom(2)` without flags, which blocks until the
//! kernel's pool is initialised: on a freshly booted VM or CI container that can be seconds to
//! minutes, and a runner must not hang before it has written anything. These values need to
//! be unpredictable and distinct, not secret keys: SipHash keyed by std's `RandomState` (whose
//! keys std draws with `GRND_INSECURE`, never blocking) over a process-wide counter, the time
//! and the pid gives that. Collisions are handled where they matter anyway (create-new opens,
//! the run folder's rename).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A random 64-bit value; never blocks.
pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Fills `buf` with random bytes; never blocks.
pub fn fill(buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        let bytes = random_u64().to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_differ_and_use_every_bit() {
        let values: Vec<u64> = (0..1000).map(|_| random_u64()).collect();
        let distinct: std::collections::BTreeSet<_> = values.iter().collect();
        assert_eq!(distinct.len(), values.len());
        let (ones, zeros) = values
            .iter()
            .fold((0u64, u64::MAX), |(o, z), v| (o | v, z & v));
        assert_eq!(ones, u64::MAX, "every bit is set somewhere");
        assert_eq!(zeros, 0, "every bit is clear somewhere");
        let mut b = [0u8; 13];
        fill(&mut b);
        assert!(b.iter().any(|&x| x != 0));
    }
}
