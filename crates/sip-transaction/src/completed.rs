//! Completed non-INVITE server transactions over unreliable transports, kept as compact
//! records while Timer J absorbs retransmissions of their request (RFC 3261 §17.2.2).
//!
//! Once its final response is out, such a transaction only ever resends that response
//! to a retransmitted request, for 64×T1 (32 s). At thousands of REGISTERs per second
//! that is hundreds of thousands of transactions at once, so instead of a full
//! transaction each keeps a record: a keyed hash of its key, its flow and the response.
//! Timer J is the same for every record, so records expire in insertion order from a
//! FIFO, with no per-record timer.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::time::Instant;

use bytes::Bytes;
use sip_message::FlowId;

use crate::key::ServerKey;
use crate::layer::{shrunk_capacity, TransactionId, Transmit};

#[derive(Debug)]
struct Record {
    key_hash: u64,
    /// The transaction the record replaces, named in the resends' [`Transmit`]s.
    transaction: TransactionId,
    flow: FlowId,
    response: Bytes,
    expires_at: Instant,
}

/// The records, oldest first, and an index from key hash to record.
#[derive(Debug)]
pub(crate) struct CompletedRecords {
    /// SipHash with keys drawn at random for this layer: without them nobody outside can
    /// craft requests whose keys collide with another sender's record.
    hasher: RandomState,
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
            hasher: RandomState::new(),
            records: VecDeque::new(),
            index: HashMap::new(),
            first: 0,
            max,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// Keeps `response` for retransmissions of the request with `key` until `expires_at`;
    /// past the bound the oldest record goes early.
    pub(crate) fn insert(
        &mut self,
        key: &ServerKey,
        transaction: TransactionId,
        flow: FlowId,
        response: &[u8],
        expires_at: Instant,
    ) {
        let key_hash = self.hasher.hash_one(key);
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

    /// The response to resend for a retransmission of the request with `key`.
    pub(crate) fn resend(&self, key: &ServerKey) -> Option<Transmit> {
        if self.records.is_empty() {
            return None;
        }
        let sequence = *self.index.get(&self.hasher.hash_one(key))?;
        let position = usize::try_from(sequence.checked_sub(self.first)?).ok()?;
        let record = self.records.get(position)?;
        Some(Transmit {
            transaction: record.transaction,
            flow: record.flow,
            payload: record.response.clone(),
        })
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
    use crate::key::SentBy;

    fn key(branch: &str) -> ServerKey {
        ServerKey::Branch {
            branch: branch.into(),
            sent_by: SentBy {
                host: "192.0.2.1".into(),
                port: Some(5060),
            },
            method: "REGISTER".into(),
        }
    }

    fn flow() -> FlowId {
        FlowId::udp("192.0.2.1:5060".parse().unwrap())
    }

    fn payload(records: &CompletedRecords, branch: &str) -> Option<Bytes> {
        records
            .resend(&key(branch))
            .map(|transmit| transmit.payload)
    }

    #[test]
    fn records_expire_in_order() {
        let t0 = Instant::now();
        let mut records = CompletedRecords::new(10);
        for (n, branch) in ["a", "b", "c"].into_iter().enumerate() {
            let at = t0 + Duration::from_secs(n as u64);
            records.insert(
                &key(branch),
                TransactionId(n as u64),
                flow(),
                branch.as_bytes(),
                at,
            );
        }
        assert_eq!(payload(&records, "b").as_deref(), Some(&b"b"[..]));
        assert_eq!(payload(&records, "d"), None);
        assert_eq!(records.next_deadline(), Some(t0));
        records.expire(t0 + Duration::from_secs(1));
        assert_eq!(records.len(), 1);
        assert_eq!(payload(&records, "a"), None);
        assert_eq!(payload(&records, "b"), None);
        assert_eq!(payload(&records, "c").as_deref(), Some(&b"c"[..]));
        records.expire(t0 + Duration::from_secs(2));
        assert_eq!(records.len(), 0);
        assert_eq!(records.next_deadline(), None);
    }

    #[test]
    fn the_oldest_goes_past_the_bound() {
        let t0 = Instant::now();
        let mut records = CompletedRecords::new(2);
        for (n, branch) in ["a", "b", "c"].into_iter().enumerate() {
            records.insert(&key(branch), TransactionId(n as u64), flow(), b"r", t0);
        }
        assert_eq!(records.len(), 2);
        assert_eq!(payload(&records, "a"), None);
        assert!(payload(&records, "b").is_some());
        assert!(payload(&records, "c").is_some());

        let mut none = CompletedRecords::new(0);
        none.insert(&key("a"), TransactionId(1), flow(), b"r", t0);
        assert_eq!(none.len(), 0);
        assert_eq!(payload(&none, "a"), None);
    }

    #[test]
    fn a_clock_going_back_does_not_reorder_deadlines() {
        let t0 = Instant::now();
        let mut records = CompletedRecords::new(10);
        records.insert(
            &key("a"),
            TransactionId(1),
            flow(),
            b"a",
            t0 + Duration::from_secs(5),
        );
        records.insert(&key("b"), TransactionId(2), flow(), b"b", t0);
        records.expire(t0);
        assert_eq!(records.len(), 2);
        records.expire(t0 + Duration::from_secs(5));
        assert_eq!(records.len(), 0);
    }
}
