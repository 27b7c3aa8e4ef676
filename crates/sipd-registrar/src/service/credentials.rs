//! Digest credentials by user name, with the endpoint's facts (owner, application,
//! permissions), served from memory: known users until an endpoint change invalidates them,
//! unknown ones for a short while (bounded), so REGISTER and INVITE floods for made-up users
//! do not reach the database and endpoints created meanwhile can register soon.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sipd_store::{Store, StoreError};

use crate::DigestCredentials;

const SHARDS: usize = 16;

enum Entry {
    Known(Arc<DigestCredentials>),
    /// No such user when looked up; trusted until this Unix millisecond.
    Unknown {
        until_ms: i64,
    },
}

type Shard = HashMap<Box<str>, Entry>;

pub(crate) struct CredentialCache {
    shards: Box<[Mutex<Shard>]>,
    /// Bumped by every invalidation: a lookup whose database read overlapped one does not
    /// cache what it read, which may predate the change.
    generation: AtomicU64,
    unknown: AtomicUsize,
    unknown_ttl_ms: i64,
    max_unknown: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CredentialCache {
    pub(crate) fn new(unknown_ttl_ms: i64, max_unknown: usize) -> CredentialCache {
        CredentialCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            generation: AtomicU64::new(0),
            unknown: AtomicUsize::new(0),
            unknown_ttl_ms,
            max_unknown,
        }
    }

    fn shard(&self, username: &str) -> &Mutex<Shard> {
        // FNV-1a: cheap, and the shard only spreads lock contention.
        let hash = username
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
            });
        &self.shards[(hash % SHARDS as u64) as usize]
    }

    /// The user's credentials (`None`: no such user) if memory has the answer; `None`
    /// when only the store does.
    pub(crate) fn cached(
        &self,
        username: &str,
        now_ms: i64,
    ) -> Option<Option<Arc<DigestCredentials>>> {
        match lock(self.shard(username)).get(username) {
            Some(Entry::Known(credentials)) => Some(Some(credentials.clone())),
            Some(Entry::Unknown { until_ms }) if *until_ms > now_ms => Some(None),
            _ => None,
        }
    }

    /// The user's credentials (`None`: no such user), from memory or else from the store.
    pub(crate) async fn get(
        &self,
        store: &Store,
        username: &str,
        now_ms: i64,
    ) -> Result<Option<Arc<DigestCredentials>>, StoreError> {
        if let Some(cached) = self.cached(username, now_ms) {
            return Ok(cached);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let fetched = store
            .credentials_by_username(username)
            .await?
            .and_then(|row| {
                let credentials = DigestCredentials::from_store(&row);
                if credentials.is_none() {
                    tracing::warn!(username, "endpoint has damaged HA1 values: refused");
                }
                credentials
            })
            .map(Arc::new);
        let mut shard = lock(self.shard(username));
        if self.generation.load(Ordering::Acquire) != generation {
            return Ok(fetched);
        }
        // A concurrent miss cached them first: keep that copy, which REGISTERs in flight
        // compare against (`is_current`).
        if let Some(Entry::Known(cached)) = shard.get(username) {
            return Ok(Some(cached.clone()));
        }
        let entry = match &fetched {
            Some(credentials) => Entry::Known(credentials.clone()),
            None if self.unknown.load(Ordering::Relaxed) < self.max_unknown => {
                self.unknown.fetch_add(1, Ordering::Relaxed);
                Entry::Unknown {
                    until_ms: now_ms.saturating_add(self.unknown_ttl_ms),
                }
            }
            None => {
                drop(shard);
                self.sweep_unknown(now_ms);
                return Ok(None);
            }
        };
        if let Some(Entry::Unknown { .. }) = shard.insert(username.into(), entry) {
            self.unknown.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(fetched)
    }

    /// Whether `credentials` are still what the cache holds for their user: false once an
    /// endpoint change made them stale (or they were never cached).
    pub(crate) fn is_current(&self, credentials: &Arc<DigestCredentials>) -> bool {
        let username = &*credentials.endpoint.username;
        match lock(self.shard(username)).get(username) {
            Some(Entry::Known(cached)) => Arc::ptr_eq(cached, credentials),
            _ => false,
        }
    }

    /// Forgets one user (its password, permissions, application or owner changed, or it was
    /// deleted).
    pub(crate) fn forget(&self, username: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(Entry::Unknown { .. }) = lock(self.shard(username)).remove(username) {
            self.unknown.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Forgets everything (changes may have been missed).
    pub(crate) fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            let unknown = shard
                .values()
                .filter(|entry| matches!(entry, Entry::Unknown { .. }))
                .count();
            shard.clear();
            self.unknown.fetch_sub(unknown, Ordering::Relaxed);
        }
    }

    /// Drops the unknown-user entries that have run out, making room for new ones.
    fn sweep_unknown(&self, now_ms: i64) {
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            let before = shard.len();
            shard.retain(
                |_, entry| !matches!(entry, Entry::Unknown { until_ms } if *until_ms <= now_ms),
            );
            self.unknown
                .fetch_sub(before - shard.len(), Ordering::Relaxed);
        }
    }
}
