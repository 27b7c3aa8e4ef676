//! Nonce-count replay detection (RFC 7616 §3.4: the server checks that nc increases).
//!
//! Only nonces that carried a correct response are tracked, so an unauthenticated attacker
//! cannot fill the table. It is still bounded: when full, or when a nonce has expired, the
//! oldest entries are forgotten and everything issued up to the newest forgotten nonce is
//! refused from then on (its counts are unknown, so accepting it could accept a replay). A
//! refused legitimate client gets a `stale=true` challenge and carries on with a fresh nonce.

use std::collections::BTreeMap;

use crate::nonce::NonceId;

pub(crate) struct NonceCounts {
    highest_nc: BTreeMap<NonceId, u32>,
    capacity: usize,
    /// Newest nonce whose count was forgotten; anything not newer is refused.
    forgotten_up_to: Option<NonceId>,
}

impl NonceCounts {
    pub(crate) fn new(capacity: usize) -> Self {
        NonceCounts {
            highest_nc: BTreeMap::new(),
            capacity: capacity.max(1),
            forgotten_up_to: None,
        }
    }

    /// Records `nc` for `nonce` if it is higher than any count seen with it; false for a
    /// replayed or lower count, or a nonce whose counts were forgotten. Nonces issued before
    /// `expired_before_ms` are dropped first (they are refused as stale anyway).
    pub(crate) fn accept(&mut self, nonce: NonceId, nc: u32, expired_before_ms: u64) -> bool {
        while let Some(entry) = self.highest_nc.first_entry() {
            if entry.key().issued_ms >= expired_before_ms {
                break;
            }
            let (oldest, _) = entry.remove_entry();
            self.forget(oldest);
        }
        if let Some(highest) = self.highest_nc.get_mut(&nonce) {
            if nc <= *highest {
                return false;
            }
            *highest = nc;
            return true;
        }
        if self
            .forgotten_up_to
            .is_some_and(|forgotten| nonce <= forgotten)
        {
            return false;
        }
        while self.highest_nc.len() >= self.capacity {
            match self.highest_nc.pop_first() {
                Some((oldest, _)) => self.forget(oldest),
                None => break,
            }
        }
        // The evictions above may have passed this nonce if it is the oldest of all.
        if self
            .forgotten_up_to
            .is_some_and(|forgotten| nonce <= forgotten)
        {
            return false;
        }
        self.highest_nc.insert(nonce, nc);
        true
    }

    fn forget(&mut self, nonce: NonceId) {
        self.forgotten_up_to = self.forgotten_up_to.max(Some(nonce));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.highest_nc.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(issued_ms: u64, seq: u32) -> NonceId {
        NonceId { issued_ms, seq }
    }

    #[test]
    fn counts_must_increase_per_nonce() {
        let mut counts = NonceCounts::new(10);
        assert!(counts.accept(id(100, 0), 1, 0));
        assert!(!counts.accept(id(100, 0), 1, 0), "replayed nc");
        assert!(counts.accept(id(100, 0), 3, 0));
        assert!(!counts.accept(id(100, 0), 2, 0), "lower nc");
        assert!(
            counts.accept(id(100, 1), 1, 0),
            "another nonce counts on its own"
        );
    }

    #[test]
    fn stays_bounded_and_refuses_forgotten_nonces() {
        let mut counts = NonceCounts::new(3);
        for seq in 0..1000 {
            assert!(counts.accept(id(100, seq), 1, 0));
            assert!(counts.len() <= 3);
        }
        // Forgotten: a replay of an old nonce is refused rather than taken as a first use.
        assert!(!counts.accept(id(100, 5), 1, 0));
        assert!(!counts.accept(id(100, 5), 2, 0));
        // A nonce older than everything tracked does not evict a newer one to get in.
        assert!(!counts.accept(id(50, 0), 1, 0));
        // New nonces still get in; the newest tracked one still counts.
        assert!(counts.accept(id(200, 0), 1, 0));
        assert!(counts.accept(id(100, 999), 2, 0));
    }

    #[test]
    fn expired_nonces_are_dropped() {
        let mut counts = NonceCounts::new(100);
        assert!(counts.accept(id(100, 0), 1, 0));
        assert!(counts.accept(id(200, 1), 1, 0));
        assert!(counts.accept(id(300, 2), 1, 250));
        assert_eq!(counts.len(), 1);
        assert!(!counts.accept(id(200, 1), 2, 250));
    }
}
