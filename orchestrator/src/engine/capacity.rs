//! The run's concurrency cap as seats: a stage holds a seat while it does work. A stage that
//! only waits — an approval stage waiting for a person, a stage waiting for a resource lock
//! held elsewhere — gives its seat back, so other ready stages go on (the cap counts work, not
//! waits); a lock waiter takes a seat again once it holds its locks, before it starts.
//!
//! The scheduler takes seats without waiting ([`Capacity::try_take`]) and is woken when a
//! waiting stage gives one back ([`Capacity::freed`]). Seats go to stages waiting in
//! [`Capacity::take`] first, in order (tokio's semaphore is fair).

use std::sync::Arc;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// The seats of one run's stages.
#[derive(Debug, Clone)]
pub struct Capacity {
    seats: Arc<Semaphore>,
    freed: Arc<Notify>,
}

/// One seat; given back when dropped.
#[derive(Debug)]
pub struct Seat {
    _permit: OwnedSemaphorePermit,
}

impl Capacity {
    /// `n` seats (at least one; a cap beyond what a semaphore can count, such as
    /// `concurrency: 18446744073709551615`, is no cap at all and becomes the largest it can).
    pub fn new(n: usize) -> Capacity {
        Capacity {
            seats: Arc::new(Semaphore::new(n.clamp(1, Semaphore::MAX_PERMITS))),
            freed: Arc::new(Notify::new()),
        }
    }

    /// A seat if one is free now.
    pub fn try_take(&self) -> Option<Seat> {
        self.seats
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|p| Seat { _permit: p })
    }

    /// Waits for a seat.
    pub async fn take(&self) -> Seat {
        // The semaphore is never closed.
        match self.seats.clone().acquire_owned().await {
            Ok(p) => Seat { _permit: p },
            Err(_) => unreachable!("the run's semaphore is never closed"),
        }
    }

    /// Gives `seat` back while its stage waits, and wakes the scheduler to use it.
    pub fn give_back(&self, seat: Option<Seat>) {
        if seat.is_some() {
            drop(seat);
            self.freed.notify_one();
        }
    }

    /// Resolves when a waiting stage gave its seat back (a wake-up is kept if nobody waits).
    pub async fn freed(&self) {
        self.freed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_seat_given_back_is_free_and_wakes_the_scheduler() {
        let cap = Capacity::new(1);
        let seat = cap.try_take().expect("one seat");
        assert!(cap.try_take().is_none());
        cap.give_back(Some(seat));
        tokio::time::timeout(std::time::Duration::from_secs(1), cap.freed())
            .await
            .expect("woken");
        let again = cap.try_take().expect("free again");
        drop(again);
        let _ = cap.take().await;
    }
}
