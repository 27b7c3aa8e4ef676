//! The location service's memory: every endpoint's bindings in a compact form, the per-AOR
//! lock that serializes its REGISTERs, an index of this node's connection flows, and the
//! expiry deadlines. Owns no task and does no I/O; the service drives it.
//!
//! Lock order: shard map → one AOR's state → flow index → deadlines. None is held across an
//! await; the per-AOR `serial` lock is async and taken before any of them.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sipd_store::Binding;

/// Shards of the endpoint map, so lookups and installs of different AORs rarely contend.
const SHARDS: usize = 64;

/// Distinct strings (user agents, node ids, transports) shared between bindings; beyond this
/// many, new strings are stored unshared so hostile User-Agent values cannot grow the table.
const MAX_INTERNED: usize = 4096;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent, so a panic elsewhere does not spoil it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether bindings over `transport` live on a connection that can close.
pub(crate) fn is_connection(transport: &str) -> bool {
    ["tcp", "tls", "ws", "wss"]
        .iter()
        .any(|t| t.eq_ignore_ascii_case(transport))
}

type Shard = HashMap<i64, Arc<Aor>>;

pub(crate) struct Location {
    node_id: Arc<str>,
    shards: Box<[Mutex<Shard>]>,
    /// (hash of flow id, endpoint) for this node's connection-bound bindings: who to visit when
    /// a connection closes. A hash collision only costs a visit that finds nothing.
    flows: Mutex<BTreeSet<(u64, i64)>>,
    flow_hasher: RandomState,
    /// (earliest expiry, endpoint) of every endpoint with bindings.
    deadlines: Mutex<BTreeSet<(i64, i64)>>,
    /// Counts installs, so a resync can tell entries written after its database read.
    installs: AtomicU64,
    interned: Mutex<HashSet<Arc<str>>>,
}

/// One endpoint (AOR): its REGISTERs take `serial` for the whole decide-commit-install span.
pub(crate) struct Aor {
    pub(crate) serial: tokio::sync::Mutex<()>,
    state: Mutex<AorState>,
}

#[derive(Default)]
struct AorState {
    bindings: Vec<Compact>,
    /// This AOR's key in `Location::deadlines`.
    deadline: Option<i64>,
    /// `Location::installs` at the last install.
    installed: u64,
}

/// A binding without its endpoint (the map key), at about a third of [`Binding`]'s size: the
/// strings of one binding share one allocation, repeated ones are shared between bindings.
struct Compact {
    /// contact URI, Call-ID, received, flow id, instance id, path, back to back.
    text: Box<str>,
    /// Where each field of `text` ends.
    ends: [u32; FIELDS],
    /// Bit `i` set: optional field `i` (flow id, instance id, path) is present.
    present: u8,
    transport: Arc<str>,
    node_id: Arc<str>,
    user_agent: Option<Arc<str>>,
    expires_at_ms: i64,
    updated_at_ms: i64,
    cseq: i64,
    reg_id: Option<i64>,
    q: Option<i32>,
}

const FIELDS: usize = 6;
const FLOW: usize = 3;
const INSTANCE: usize = 4;
const PATH: usize = 5;

impl Compact {
    fn field(&self, index: usize) -> &str {
        let start = if index == 0 {
            0
        } else {
            self.ends[index - 1] as usize
        };
        self.text
            .get(start..self.ends[index] as usize)
            .unwrap_or_default()
    }

    fn optional(&self, index: usize) -> Option<&str> {
        (self.present & (1 << (index - FLOW)) != 0).then(|| self.field(index))
    }

    fn flow_id(&self) -> Option<&str> {
        self.optional(FLOW)
    }

    fn expanded(&self, endpoint_pk: i64) -> Binding {
        Binding {
            endpoint_pk,
            contact_uri: self.field(0).to_owned(),
            expires_at_ms: self.expires_at_ms,
            q: self.q,
            call_id: self.field(1).to_owned(),
            cseq: self.cseq,
            user_agent: self.user_agent.as_deref().map(str::to_owned),
            received: self.field(2).to_owned(),
            transport: self.transport.to_string(),
            flow_id: self.optional(FLOW).map(str::to_owned),
            instance_id: self.optional(INSTANCE).map(str::to_owned),
            reg_id: self.reg_id,
            path: self.optional(PATH).map(str::to_owned),
            node_id: self.node_id.to_string(),
            updated_at_ms: self.updated_at_ms,
        }
    }

    /// Whether this node holds the binding's connection (so its closing removes the binding).
    fn on_our_connection(&self, node_id: &str) -> bool {
        self.flow_id().is_some() && is_connection(&self.transport) && *self.node_id == *node_id
    }
}

impl Location {
    pub(crate) fn new(node_id: &str) -> Location {
        Location {
            node_id: Arc::from(node_id),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            flows: Mutex::default(),
            flow_hasher: RandomState::new(),
            deadlines: Mutex::default(),
            installs: AtomicU64::new(0),
            interned: Mutex::default(),
        }
    }

    fn shard(&self, endpoint_pk: i64) -> &Mutex<Shard> {
        &self.shards[endpoint_pk.rem_euclid(SHARDS as i64) as usize]
    }

    /// The endpoint's entry, created if needed; removed again when the handle drops and the
    /// entry is empty and unused.
    pub(crate) fn aor(&self, endpoint_pk: i64) -> AorHandle<'_> {
        let aor = lock(self.shard(endpoint_pk))
            .entry(endpoint_pk)
            .or_insert_with(|| {
                Arc::new(Aor {
                    serial: tokio::sync::Mutex::new(()),
                    state: Mutex::default(),
                })
            })
            .clone();
        AorHandle {
            location: self,
            endpoint_pk,
            aor,
        }
    }

    /// The endpoint's entry if it has one.
    pub(crate) fn existing(&self, endpoint_pk: i64) -> Option<AorHandle<'_>> {
        let aor = lock(self.shard(endpoint_pk)).get(&endpoint_pk)?.clone();
        Some(AorHandle {
            location: self,
            endpoint_pk,
            aor,
        })
    }

    /// The endpoint's bindings that are live at `now_ms`.
    pub(crate) fn live(&self, endpoint_pk: i64, now_ms: i64) -> Vec<Binding> {
        let Some(aor) = lock(self.shard(endpoint_pk)).get(&endpoint_pk).cloned() else {
            return Vec::new();
        };
        let state = lock(&aor.state);
        state
            .bindings
            .iter()
            .filter(|b| b.expires_at_ms > now_ms)
            .map(|b| b.expanded(endpoint_pk))
            .collect()
    }

    /// Endpoints that may have bindings on this node's connection `flow_id`.
    pub(crate) fn endpoints_on_flow(&self, flow_id: &str) -> Vec<i64> {
        let hash = self.flow_hasher.hash_one(flow_id);
        lock(&self.flows)
            .range((hash, i64::MIN)..=(hash, i64::MAX))
            .map(|&(_, endpoint_pk)| endpoint_pk)
            .collect()
    }

    /// Endpoints with bindings, and the install count before listing them.
    pub(crate) fn endpoints(&self) -> (u64, Vec<i64>) {
        let installs = self.installs.load(Ordering::Acquire);
        let endpoints = self
            .shards
            .iter()
            .flat_map(|shard| lock(shard).keys().copied().collect::<Vec<_>>())
            .collect();
        (installs, endpoints)
    }

    /// The earliest expiry of any binding held.
    pub(crate) fn next_deadline(&self) -> Option<i64> {
        lock(&self.deadlines).first().map(|&(at, _)| at)
    }

    /// Drops the bindings expired at `now_ms` from every endpoint whose deadline has passed.
    /// Returns how many bindings were dropped.
    pub(crate) fn expire(&self, now_ms: i64) -> usize {
        let mut dropped = 0;
        loop {
            let due = {
                let mut deadlines = lock(&self.deadlines);
                match deadlines.first() {
                    Some(&(at, endpoint_pk)) if at <= now_ms => {
                        deadlines.pop_first();
                        endpoint_pk
                    }
                    _ => return dropped,
                }
            };
            if let Some(handle) = self.existing(due) {
                dropped += handle.retain(|b| b.expires_at_ms > now_ms).len();
            }
        }
    }

    /// An endpoint added to the deadline set moved the earliest deadline forward.
    fn schedule(&self, endpoint_pk: i64, old: Option<i64>, new: Option<i64>) -> bool {
        if old == new {
            return false;
        }
        let mut deadlines = lock(&self.deadlines);
        if let Some(old) = old {
            deadlines.remove(&(old, endpoint_pk));
        }
        let Some(new) = new else {
            return false;
        };
        let earliest = deadlines.first().is_none_or(|&(at, _)| new < at);
        deadlines.insert((new, endpoint_pk));
        earliest
    }

    fn index_flows(&self, endpoint_pk: i64, old: &[Compact], new: &[Compact]) {
        let hashes = |bindings: &[Compact]| -> BTreeSet<u64> {
            bindings
                .iter()
                .filter(|b| b.on_our_connection(&self.node_id))
                .filter_map(|b| b.flow_id().map(|flow| self.flow_hasher.hash_one(flow)))
                .collect()
        };
        let (old, new) = (hashes(old), hashes(new));
        if old == new {
            return;
        }
        let mut flows = lock(&self.flows);
        for hash in old.difference(&new) {
            flows.remove(&(*hash, endpoint_pk));
        }
        for hash in new.difference(&old) {
            flows.insert((*hash, endpoint_pk));
        }
    }

    fn compact(&self, binding: &Binding) -> Compact {
        let optional = [
            binding.flow_id.as_deref(),
            binding.instance_id.as_deref(),
            binding.path.as_deref(),
        ];
        let fields = [
            binding.contact_uri.as_str(),
            binding.call_id.as_str(),
            binding.received.as_str(),
            optional[0].unwrap_or_default(),
            optional[1].unwrap_or_default(),
            optional[2].unwrap_or_default(),
        ];
        let mut text = String::with_capacity(fields.iter().map(|f| f.len()).sum());
        let mut ends = [0u32; FIELDS];
        for (end, field) in ends.iter_mut().zip(fields) {
            text.push_str(field);
            *end = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        let present = optional
            .iter()
            .enumerate()
            .filter(|(_, field)| field.is_some())
            .fold(0u8, |bits, (i, _)| bits | 1 << i);
        Compact {
            text: text.into_boxed_str(),
            ends,
            present,
            transport: self.intern(&binding.transport),
            node_id: self.intern(&binding.node_id),
            user_agent: binding.user_agent.as_deref().map(|ua| self.intern(ua)),
            expires_at_ms: binding.expires_at_ms,
            updated_at_ms: binding.updated_at_ms,
            cseq: binding.cseq,
            reg_id: binding.reg_id,
            q: binding.q,
        }
    }

    fn intern(&self, text: &str) -> Arc<str> {
        if *self.node_id == *text {
            return self.node_id.clone();
        }
        let mut interned = lock(&self.interned);
        if let Some(shared) = interned.get(text) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(text);
        if interned.len() < MAX_INTERNED {
            interned.insert(shared.clone());
        }
        shared
    }
}

/// A reference to one endpoint's entry; dropping it removes the entry if it is empty and no
/// one else holds it, so the map only keeps endpoints with bindings.
pub(crate) struct AorHandle<'a> {
    location: &'a Location,
    endpoint_pk: i64,
    aor: Arc<Aor>,
}

impl AorHandle<'_> {
    fn aor(&self) -> &Aor {
        &self.aor
    }

    /// The per-AOR lock, held from reading the bindings until the new ones are installed.
    pub(crate) fn serial(&self) -> &tokio::sync::Mutex<()> {
        &self.aor().serial
    }

    /// All held bindings (expired ones too: the core ignores those).
    pub(crate) fn bindings(&self) -> Vec<Binding> {
        let state = lock(&self.aor().state);
        state
            .bindings
            .iter()
            .map(|b| b.expanded(self.endpoint_pk))
            .collect()
    }

    /// Replaces the endpoint's bindings. Returns whether the earliest deadline of all moved
    /// forward (the expiry timer must wake earlier).
    pub(crate) fn install(&self, bindings: &[Binding]) -> bool {
        let location = self.location;
        let new: Vec<Compact> = bindings.iter().map(|b| location.compact(b)).collect();
        let mut state = lock(&self.aor().state);
        location.index_flows(self.endpoint_pk, &state.bindings, &new);
        let deadline = new.iter().map(|b| b.expires_at_ms).min();
        let earlier = location.schedule(self.endpoint_pk, state.deadline, deadline);
        state.bindings = new;
        state.deadline = deadline;
        state.installed = location.installs.fetch_add(1, Ordering::AcqRel) + 1;
        earlier
    }

    /// Keeps only the bindings `keep` accepts; returns the others.
    pub(crate) fn retain(&self, keep: impl Fn(&Binding) -> bool) -> Vec<Binding> {
        self.retain_unless_installed_after(u64::MAX, keep)
    }

    /// [`AorHandle::retain`], unless the entry was installed after install count `installs`
    /// (it is newer than what `keep` was computed from).
    pub(crate) fn retain_unless_installed_after(
        &self,
        installs: u64,
        keep: impl Fn(&Binding) -> bool,
    ) -> Vec<Binding> {
        let location = self.location;
        let mut state = lock(&self.aor().state);
        if state.installed > installs {
            return Vec::new();
        }
        let (kept, dropped): (Vec<Compact>, Vec<Compact>) = std::mem::take(&mut state.bindings)
            .into_iter()
            .partition(|b| keep(&b.expanded(self.endpoint_pk)));
        location.index_flows(self.endpoint_pk, &dropped, &[]);
        let deadline = kept.iter().map(|b| b.expires_at_ms).min();
        location.schedule(self.endpoint_pk, state.deadline, deadline);
        state.bindings = kept;
        state.deadline = deadline;
        dropped
            .iter()
            .map(|b| b.expanded(self.endpoint_pk))
            .collect()
    }

    /// Drops this node's bindings on connection `flow_id`; returns them.
    pub(crate) fn drop_flow(&self, flow_id: &str) -> Vec<Binding> {
        let node_id = &self.location.node_id;
        self.retain(|b| {
            !(b.flow_id.as_deref() == Some(flow_id)
                && is_connection(&b.transport)
                && b.node_id == **node_id)
        })
    }

    /// Whether this node's connection `flow_id` carries one of the endpoint's bindings.
    pub(crate) fn on_flow(&self, flow_id: &str) -> bool {
        let node_id = &self.location.node_id;
        lock(&self.aor().state)
            .bindings
            .iter()
            .any(|b| b.flow_id() == Some(flow_id) && *b.node_id == **node_id)
    }
}

impl Drop for AorHandle<'_> {
    fn drop(&mut self) {
        let mut shard = lock(self.location.shard(self.endpoint_pk));
        // Clones are only made under the shard lock: a count of two (the map's and this one)
        // means no one else holds it.
        let unused = shard
            .get(&self.endpoint_pk)
            .is_some_and(|aor| Arc::strong_count(aor) == 2 && lock(&aor.state).bindings.is_empty());
        if unused {
            shard.remove(&self.endpoint_pk);
        }
    }
}
