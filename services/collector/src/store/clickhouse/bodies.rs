//! Insert bodies, and the block their events are gathered in, kept for reuse. A load's
//! bodies are tens of megabytes: fresh ones each time had the kernel fault in and zero their
//! pages (a seventh of the collector's time in `perf` during `xdr-bench collector`). A load
//! needs bodies of two sizes (its events' block, large; their lookup rows, small), so a body
//! is taken by best fit: handing the small one out for the large block grew it into fresh
//! memory each time, which is what reuse is for avoiding.

use std::sync::{Mutex, PoisonError};

use super::rows::EventBlock;

/// Emptied bodies of earlier inserts, smallest first, holding at most `most_bytes` of
/// capacity in all.
pub(super) struct SpareBodies {
    by_capacity: Mutex<Vec<Vec<u8>>>,
    most_bytes: usize,
}

impl SpareBodies {
    pub(super) fn new(most_bytes: usize) -> Self {
        SpareBodies {
            by_capacity: Mutex::new(Vec::new()),
            most_bytes,
        }
    }

    fn spare(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.by_capacity
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// An empty body with room for `room` bytes: the smallest spare that has it, else a new
    /// one with a quarter more room (a load's shares vary a little in size), the largest
    /// spare let go for it. A spare grown instead had its old bytes copied into fresh memory,
    /// and to twice its room (as `reserve` grows): a load's four bodies then outgrew the cap,
    /// and one was let go and made afresh at every load, its pages faulted in again.
    pub(super) fn take(&self, room: usize) -> Vec<u8> {
        let outgrown = {
            let mut spare = self.spare();
            let fits = spare.partition_point(|body| body.capacity() < room);
            if fits < spare.len() {
                let mut body = spare.remove(fits);
                body.clear();
                return body;
            }
            spare.pop()
        };
        drop(outgrown);
        Vec::with_capacity(room + room / 4)
    }

    /// Keeps `body` for a later insert; past the cap, the smallest spares are let go (a large
    /// body serves any insert, a small one only small ones).
    pub(super) fn keep(&self, body: Vec<u8>) {
        if body.capacity() > self.most_bytes {
            return;
        }
        let mut spare = self.spare();
        let at = spare.partition_point(|kept| kept.capacity() < body.capacity());
        spare.insert(at, body);
        let mut kept: usize = spare.iter().map(Vec::capacity).sum();
        while kept > self.most_bytes {
            kept -= spare.remove(0).capacity();
        }
    }

    #[cfg(test)]
    fn capacities(&self) -> Vec<usize> {
        self.spare().iter().map(Vec::capacity).collect()
    }
}

/// The block of the last load's events, emptied for the next: one load at a time uses it
/// (another at the same time makes its own). It keeps the room of the largest load's share
/// of a server, as a spare body does, up to `most_bytes`: a block grown past it by a load of
/// large events is let go.
pub(super) struct SpareBlock {
    kept: Mutex<Option<EventBlock>>,
    most_bytes: usize,
}

impl SpareBlock {
    pub(super) fn new(most_bytes: usize) -> Self {
        SpareBlock {
            kept: Mutex::new(None),
            most_bytes,
        }
    }

    pub(super) fn take(&self) -> EventBlock {
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut block = kept.unwrap_or_else(EventBlock::new);
        block.clear();
        block
    }

    pub(super) fn keep(&self, block: EventBlock) {
        if block.capacity() <= self.most_bytes {
            *self.kept.lock().unwrap_or_else(PoisonError::into_inner) = Some(block);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(capacity: usize) -> Vec<u8> {
        let mut body = Vec::with_capacity(capacity);
        body.extend_from_slice(b"rows of an earlier insert");
        body
    }

    #[test]
    fn a_body_is_taken_by_best_fit_and_comes_back_empty() {
        let pool = SpareBodies::new(1 << 20);
        pool.keep(body(1000));
        pool.keep(body(100_000));
        pool.keep(body(10_000));
        let small = pool.take(5_000);
        assert_eq!(small.capacity(), 10_000, "the smallest spare with the room");
        assert!(small.is_empty());
        let large = pool.take(50_000);
        assert_eq!(large.capacity(), 100_000);
        // None has the room: a new one with a quarter more, the largest left let go for it
        // (not kept beside it).
        let new = pool.take(2_000);
        assert_eq!((new.capacity(), new.len()), (2_500, 0));
        assert_eq!(pool.capacities(), Vec::<usize>::new());
        assert_eq!(
            pool.take(8).capacity(),
            10,
            "an empty pool makes a new body"
        );
    }

    #[test]
    fn a_block_is_kept_within_the_cap_and_comes_back_empty() {
        let event = crate::store::known_answers::rich_event();
        let nullable = super::super::rows::nullable_columns();
        let filled = || {
            let mut block = EventBlock::new();
            let mut lookups = super::super::rows::LookupRows::default();
            block.push(&event, &nullable, &mut lookups);
            block
        };
        let spare = SpareBlock::new(1 << 20);
        let block = filled();
        let room = block.capacity();
        spare.keep(block);
        let taken = spare.take();
        assert_eq!((taken.capacity(), taken.len()), (room, 0));

        let small = SpareBlock::new(room - 1);
        small.keep(filled());
        assert_eq!(small.take().capacity(), 0, "past the cap: a new block");
    }

    #[test]
    fn past_the_cap_the_smallest_spares_go() {
        let pool = SpareBodies::new(100_000);
        pool.keep(body(30_000));
        pool.keep(body(20_000));
        pool.keep(body(60_000));
        assert_eq!(pool.capacities(), [30_000, 60_000]);
        pool.keep(body(200_000));
        assert_eq!(
            pool.capacities(),
            [30_000, 60_000],
            "larger than the cap: not kept"
        );
    }
}
