//! Transaction keys: what makes two messages belong to the same transaction.

use std::collections::HashMap;

use crate::layer::TransactionId;

/// Identifies a server transaction (RFC 3261 §17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ServerKey {
    /// The top Via branch carries the `z9hG4bK` magic cookie: branch, sent-by and
    /// method identify the transaction (ACK folded into INVITE).
    Branch {
        branch: Box<str>,
        sent_by: SentBy,
        method: Box<str>,
    },
    /// RFC 2543 peers' branches are not unique: fall back to comparing the request's
    /// identifying fields. Boxed: rare, and several times the size of a branch key.
    Legacy(Box<LegacyKey>),
}

/// The sent-by of a Via (host compared case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SentBy {
    pub(crate) host: Box<str>,
    pub(crate) port: Option<u16>,
}

/// RFC 3261 §17.2.3 matching for requests without the magic cookie.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct LegacyKey {
    pub(crate) request_uri: Box<str>,
    /// The To tag of the request: absent on an initial INVITE, so its ACK, which
    /// carries the tag of our response, is matched with the tag left out and then
    /// checked against that response.
    pub(crate) to_tag: Option<Box<str>>,
    pub(crate) from_tag: Option<Box<str>>,
    pub(crate) call_id: Box<str>,
    pub(crate) cseq: u32,
    pub(crate) method: Box<str>,
    pub(crate) top_via: Box<str>,
}

impl ServerKey {
    /// The same key for another method: how a CANCEL finds the INVITE it cancels.
    pub(crate) fn with_method(&self, method: &str) -> Self {
        let mut key = self.clone();
        match &mut key {
            Self::Branch { method: m, .. } => *m = method.into(),
            Self::Legacy(legacy) => legacy.method = method.into(),
        }
        key
    }

    /// For an RFC 2543 ACK: the key of its INVITE had the To tag not been set yet.
    pub(crate) fn without_to_tag(&self) -> Option<Self> {
        match self {
            Self::Legacy(legacy) if legacy.to_tag.is_some() => {
                Some(Self::Legacy(Box::new(LegacyKey {
                    to_tag: None,
                    ..(**legacy).clone()
                })))
            }
            _ => None,
        }
    }
}

/// Identifies a client transaction (RFC 3261 §17.1.3): the branch we put in the top
/// Via, and the CSeq method (a CANCEL shares its INVITE's branch).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    pub(crate) branch: Box<str>,
    pub(crate) method: Box<str>,
}

/// Live transactions by a keyed hash of their key (server or client): the key itself is
/// stored once, in its transaction, and lookups compare it there (the caller's `is_key`).
/// Two live keys with one hash, a 2^-64 chance per pair as the hash is keyed at random
/// per layer, cannot both be indexed: the caller refuses the second.
#[derive(Debug, Default)]
pub(crate) struct KeyIndex(HashMap<u64, TransactionId>);

impl KeyIndex {
    pub(crate) fn find(
        &self,
        hash: u64,
        is_key: impl FnOnce(TransactionId) -> bool,
    ) -> Option<TransactionId> {
        self.0.get(&hash).copied().filter(|&id| is_key(id))
    }

    /// Whether a transaction with this hash could be indexed.
    pub(crate) fn is_vacant(&self, hash: u64) -> bool {
        !self.0.contains_key(&hash)
    }

    pub(crate) fn insert(&mut self, hash: u64, id: TransactionId) {
        self.0.insert(hash, id);
    }

    pub(crate) fn remove(&mut self, hash: u64, id: TransactionId) {
        if self.0.get(&hash) == Some(&id) {
            self.0.remove(&hash);
        }
    }

    pub(crate) fn shrink_to(&mut self, capacity: usize) {
        self.0.shrink_to(capacity);
    }
}
