//! Transactions that only match retransmissions any more, kept as compact records: completed
//! non-INVITE servers over unreliable transports while Timer J absorbs retransmissions of
//! their request (RFC 3261 §17.2.2), and INVITE servers and clients in RFC 6026 Accepted
//! (Timers L and M: a server absorbs INVITE retransmissions, a client hands 2xx to the TU).
//! A record with no response only matches.
//!
//! Once its final response is out, such a transaction only ever resends that response
//! to a retransmitted request, for 64×T1 (32 s). At thousands of REGISTERs per second
//! that is hundreds of thousands of transactions at once, so instead of a full
//! transaction each keeps a record: the layer's keyed hash of its key (see
//! `TransactionLayer::key_hasher`: nobody outside can make two keys collide), its flow
//! and the response. Timer J is the same for every record, so records expire in
//! insertion order from a FIFO, with no per-record timer.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use sip_message::FlowId;

use crate::layer::{shrunk_capacity, TransactionId};

#[derive(Debug)]
pub(crate) struct Record {
    key_hash: u64,
    /// The transaction the record replaces, named in its resends and responses.
    pub(crate) transaction: TransactionId,
    pub(crate) flow: FlowId,
    /// What to resend to a retransmitted request; empty: nothing (an accepted INVITE).
    pub(crate) response: Bytes,
    expires_at: Instant,
}

/// The records, oldest first, and an index from key hash to record.
#[derive(Debug)]
pub(crate) struct CompletedRecords {
    records: VecDeque<Record>,
    /// Key hash to the sequence number of its record; the record with sequence number
    /// `s` is `records[s - first]`.
    index: HashMap<u64, u64>,
    first: u64,
    max: usize,
}

impl CompletedRecords {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            records: VecDeque::new(),
            index: HashMap::new(),
            first: 0,
            max,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// Keeps `response` for retransmissions of the request whose key hashes to `key_hash`
    /// until `expires_at`; past the bound the oldest record goes early.
    pub(crate) fn insert(
        &mut self,
        key_hash: u64,
        transaction: TransactionId,
        flow: FlowId,
        response: &[u8],
        expires_at: Instant,
    ) {
        // Deadlines follow insertion order as long as the caller's clock does not go
        // back; if it does, the record waits for the one before it.
        let expires_at = self
            .records
            .back()
            .map_or(expires_at, |last| expires_at.max(last.expires_at));
        let sequence = self.first + self.records.len() as u64;
        // Only a 64-bit collision can find an entry here; the newer record wins it.
        self.index.insert(key_hash, sequence);
        self.records.push_back(Record {
            key_hash,
            transaction,
            flow,
            // Copied: the record outlives the TU's message, whose buffer may be larger.
            response: Bytes::copy_from_slice(response),
            expires_at,
        });
        while self.records.len() > self.max {
            self.pop_oldest();
        }
    }

    /// The record of the transaction whose key hashes to `key_hash`.
    pub(crate) fn find(&self, key_hash: u64) -> Option<&Record> {
        let sequence = *self.index.get(&key_hash)?;
        let position = usize::try_from(sequence.checked_sub(self.first)?).ok()?;
        self.records.get(position)
    }

    /// When the oldest record expires.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.records.front().map(|record| record.expires_at)
    }

    /// Drops every record whose Timer J fired by `now`.
    pub(crate) fn expire(&mut self, now: Instant) {
        while self
            .records
            .front()
            .is_some_and(|record| record.expires_at <= now)
        {
            self.pop_oldest();
        }
        self.shrink_after_peak();
    }

    fn pop_oldest(&mut self) {
        let Some(record) = self.records.pop_front() else {
            return;
        };
        // A newer record with a colliding hash owns the index entry now.
        if self.index.get(&record.key_hash) == Some(&self.first) {
            self.index.remove(&record.key_hash);
        }
        self.first += 1;
    }

    /// Gives back a storm's memory, as the layer does for its transactions.
    fn shrink_after_peak(&mut self) {
        if let Some(target) = shrunk_capacity(self.records.capacity(), self.records.len()) {
            self.records.shrink_to(target);
            self.index.shrink_to(target);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn flow() -> FlowId {
        FlowId::udp("192.0.2.1:5060".parse().unwrap())
    }

    /// Inserts a record whose key hash, transaction and response are all `n`.
    fn insert(records: &mut CompletedRecords, n: u8, expires_at: Instant) {
        let id = TransactionId(u64::from(n));
        records.insert(u64::from(n), id, flow(), &[n], expires_at);
    }

    fn payload(records: &CompletedRecords, key_hash: u8) -> Option<Bytes> {
        records
            .find(u64::from(key_hash))
            .map(|record| record.response.clone())
    }

    #[test]
    fn records_answer_until_they_expire_in_order() {
        let t0 = Instant::now();
        let mut records = CompletedRecords::new(10);
        for n in 1..=3 {
            insert(&mut records, n, t0 + u32::from(n) * SEC);
        }
        let record = records.find(2).unwrap();
        assert_eq!(record.response, [2][..]);
        assert_eq!(
            (record.transaction, record.flow),
            (TransactionId(2), flow())
        );
        assert_eq!(payload(&records, 4), None);
        assert_eq!(records.next_deadline(), Some(t0 + SEC));
        records.expire(t0 + 2 * SEC);
        assert_eq!(records.len(), 1);
        assert_eq!(payload(&records, 1), None);
        assert_eq!(payload(&records, 2), None);
        assert_eq!(payload(&records, 3).as_deref(), Some(&[3][..]));
        records.expire(t0 + 3 * SEC);
        assert_eq!(records.len(), 0);
        assert_eq!(records.next_deadline(), None);
    }

    #[test]
    fn the_oldest_goes_past_the_bound() {
        let t0 = Instant::now();
        let mut records = CompletedRecords::new(2);
        for n in 1..=3 {
            insert(&mut records, n, t0);
        }
        assert_eq!(records.len(), 2);
        assert_eq!(payload(&records, 1), None);
        assert!(payload(&records, 2).is_some());
        assert!(payload(&records, 3).is_some());

        let mut none = CompletedRecords::new(0);
        insert(&mut none, 1, t0);
        assert_eq!(none.len(), 0);
        assert_eq!(payload(&none, 1), None);
    }

    #[test]
    fn on_a_hash_collision_the_newer_record_answers() {
        let t0 = Instant::now();
        let mut records = CompletedRecords::new(10);
        insert(&mut records, 1, t0);
        records.insert(1, TransactionId(9), flow(), b"newer", t0 + SEC);
        assert_eq!(payload(&records, 1).as_deref(), Some(&b"newer"[..]));
        // The older record's expiry leaves the newer one's index entry alone.
        records.expire(t0);
        assert_eq!(payload(&records, 1).as_deref(), Some(&b"newer"[..]));
    }

    #[test]
    fn a_clock_going_back_does_not_reorder_deadlines() {
        let t0 = Instant::now();
        let mut records = CompletedRecords::new(10);
        insert(&mut records, 1, t0 + 5 * SEC);
        insert(&mut records, 2, t0);
        records.expire(t0);
        assert_eq!(records.len(), 2);
        records.expire(t0 + 5 * SEC);
        assert_eq!(records.len(), 0);
    }
}
