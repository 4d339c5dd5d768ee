//! Lanes that wait for their rejects-queue entries, and the order those
//! entries are sent in.
//!
//! A partly valid submission (`INVALID_EVENTS=drop-event`) is published
//! only once the rejects queue has stored what it drops, and a FIFO group
//! only once the entries before it are stored (`crate::batch`). Waiting for
//! every entry of the batch before publishing anything let one sender's
//! flood of partly valid submissions, against a slow rejects queue, delay
//! every other submission. So each lane waits for its own entries alone: a
//! lane that waits for none starts at once, and a lane starts as soon as the
//! last of its entries is stored ([`LaneGates`]); one with a refused or
//! unanswered entry never starts. And the entries go out one sender at a
//! time in turn ([`round_robin`]), so that a sender with a thousand entries
//! fills the later requests, not the first ones.

use std::collections::HashMap;
use std::hash::Hash;

use crate::rejects_queue::{self, Answered, NOT_ANSWERED_IN_TIME};

/// The lanes of a round that wait for rejects-queue entries, until their
/// entries are answered.
#[derive(Debug)]
pub struct LaneGates {
    /// Per lane: the lane, until it is let through or shut out.
    lanes: Vec<Option<Vec<usize>>>,
    /// Per lane: its entries not yet answered.
    pending: Vec<usize>,
    /// Per entry: the lanes that wait for it.
    waiting: Vec<Vec<usize>>,
    /// Per entry: what the rejects queue said, once it did.
    results: Vec<Result<(), String>>,
}

impl LaneGates {
    /// Splits `lanes` by `waits` (per lane, the indices of the `entries`
    /// entries it waits for): the lanes that wait for none, to start now,
    /// and the gates of the others.
    pub fn new(
        lanes: Vec<Vec<usize>>,
        waits: Vec<Vec<usize>>,
        entries: usize,
    ) -> (Vec<Vec<usize>>, Self) {
        let mut gates = LaneGates {
            lanes: Vec::new(),
            pending: Vec::new(),
            waiting: vec![Vec::new(); entries],
            results: vec![Err(NOT_ANSWERED_IN_TIME.to_owned()); entries],
        };
        let mut open = Vec::new();
        for (lane, waits) in lanes.into_iter().zip(waits) {
            let gated = gates.lanes.len();
            let mut pending = 0;
            for &entry in &waits {
                if let Some(waiting) = gates.waiting.get_mut(entry) {
                    waiting.push(gated);
                    pending += 1;
                }
            }
            if pending == 0 {
                open.push(lane);
            } else {
                gates.lanes.push(Some(lane));
                gates.pending.push(pending);
            }
        }
        (open, gates)
    }

    /// Records one request's answers; returns the lanes they let through:
    /// those whose last pending entry this was, every entry stored. A lane
    /// with a refused entry is shut out for good.
    pub fn answered(&mut self, answered: Answered) -> Vec<Vec<usize>> {
        let mut through = Vec::new();
        let stored: Vec<(usize, bool)> = (answered.iter())
            .map(|(entry, result)| (*entry, result.is_ok()))
            .collect();
        rejects_queue::record(&mut self.results, answered);
        for (entry, stored) in stored {
            for &lane in self.waiting.get(entry).into_iter().flatten() {
                let (Some(slot), Some(pending)) =
                    (self.lanes.get_mut(lane), self.pending.get_mut(lane))
                else {
                    continue;
                };
                *pending = pending.saturating_sub(1);
                if !stored {
                    *slot = None;
                } else if *pending == 0 {
                    through.extend(slot.take());
                }
            }
        }
        through
    }

    /// What the rejects queue said of each entry, in order; an entry it did
    /// not answer is [`NOT_ANSWERED_IN_TIME`].
    pub fn into_results(self) -> Vec<Result<(), String>> {
        self.results
    }
}

/// `items` reordered so that each sender (`key`) has one in turn, in the
/// order the senders first appear, each sender's items in their order:
/// `a1 a2 a3 b1 c1` becomes `a1 b1 c1 a2 a3`.
pub fn round_robin<K: Eq + Hash, T>(items: impl IntoIterator<Item = (K, T)>) -> Vec<T> {
    let mut queues: Vec<std::collections::VecDeque<T>> = Vec::new();
    let mut queue_of: HashMap<K, usize> = HashMap::new();
    let mut total = 0;
    for (key, item) in items {
        let next = queues.len();
        let queue = *queue_of.entry(key).or_insert(next);
        if queue == next {
            queues.push(std::collections::VecDeque::new());
        }
        if let Some(q) = queues.get_mut(queue) {
            q.push_back(item);
            total += 1;
        }
    }
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        for queue in &mut queues {
            out.extend(queue.pop_front());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sender_has_one_entry_in_turn_in_its_own_order() {
        let items = [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("c", 1), ("b", 2)];
        let ordered = round_robin(items.iter().map(|&(k, n)| (k, (k, n))));
        assert_eq!(
            ordered,
            [("a", 1), ("b", 1), ("c", 1), ("a", 2), ("b", 2), ("a", 3)]
        );
        assert!(round_robin(Vec::<(u8, u8)>::new()).is_empty());
    }

    #[test]
    fn a_lane_starts_once_all_its_entries_are_stored_and_never_after_a_refusal() {
        // Lane 10 waits for nothing, lane 11 for entry 0, lane 12 for
        // entries 1 and 2, lane 13 for entry 3.
        let lanes = vec![vec![10], vec![11], vec![12], vec![13]];
        let waits = vec![vec![], vec![0], vec![1, 2], vec![3]];
        let (open, mut gates) = LaneGates::new(lanes, waits, 4);
        assert_eq!(open, [vec![10]]);
        assert_eq!(gates.answered(vec![(1, Ok(()))]), Vec::<Vec<usize>>::new());
        assert_eq!(
            gates.answered(vec![(2, Ok(())), (0, Ok(()))]),
            [vec![12], vec![11]]
        );
        assert!(gates.answered(vec![(3, Err("refused".into()))]).is_empty());
        let results = gates.into_results();
        assert_eq!(results[3], Err("refused".to_owned()));
        assert!(results[..3].iter().all(Result::is_ok));
        // Unanswered: the lane never starts, the entry reads as unanswered.
        let (open, gates) = LaneGates::new(vec![vec![1]], vec![vec![0]], 1);
        assert!(open.is_empty());
        assert_eq!(gates.into_results(), [Err(NOT_ANSWERED_IN_TIME.to_owned())]);
    }
}
