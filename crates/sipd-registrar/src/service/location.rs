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

use sip_message::Transport;
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
fn is_connection(transport: &str) -> bool {
    Transport::from_token(transport).is_some_and(Transport::is_reliable)
}

/// Whether the binding ends when its connection closes: a WebSocket binding (only the device
/// can open one, RFC 7118) or an RFC 5626 flow (`reg-id`: the device keeps its flows up and
/// registers anew over another one). A TCP or TLS binding without reg-id outlives its
/// connection: requests reach it over a new connection to its address (RFC 3261 §18).
pub(crate) fn ends_with_connection(binding: &Binding) -> bool {
    Transport::from_token(&binding.transport).is_some_and(|transport| {
        transport.is_reliable() && (transport.is_websocket() || binding.reg_id.is_some())
    })
}

type Shard = HashMap<i64, AorState>;

pub(crate) struct Location {
    node_id: Arc<str>,
    shards: Box<[Mutex<Shard>]>,
    /// Per-AOR serialization, striped: two AORs sharing a stripe merely take turns, and no
    /// endpoint needs a lock of its own in memory.
    serials: Box<[tokio::sync::Mutex<()>]>,
    /// (hash of flow id, endpoint) for this node's connection-bound bindings: who to visit when
    /// a connection closes, and whether a connection still carries a binding (keep-alive
    /// pinning). A hash collision only costs a visit that finds nothing. Bindings that outlive
    /// their connection keep their entry until they go: flow ids are never reused.
    flows: Mutex<BTreeSet<(u64, i64)>>,
    flow_hasher: RandomState,
    /// (earliest expiry, endpoint) of every endpoint with bindings.
    deadlines: Mutex<BTreeSet<(i64, i64)>>,
    /// Counts installs, so a resync can tell entries written after its database read.
    installs: AtomicU64,
    interned: Mutex<HashSet<Arc<str>>>,
}

/// Stripes of the per-AOR lock.
const SERIAL_STRIPES: usize = 4096;

/// One endpoint (AOR) with bindings; endpoints without are not in the map.
struct AorState {
    bindings: Box<[Compact]>,
    /// This AOR's key in `Location::deadlines`.
    deadline: i64,
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
    /// Bit `i` set: optional field `i` is present (flow id, instance id, path, reg-id, q).
    present: u8,
    transport: Arc<str>,
    node_id: Arc<str>,
    user_agent: Option<Arc<str>>,
    expires_at_ms: i64,
    updated_at_ms: i64,
    cseq: i64,
    reg_id: i64,
    q: i32,
}

const FIELDS: usize = 6;
const FLOW: usize = 3;
const INSTANCE: usize = 4;
const PATH: usize = 5;
/// `present` bits of the optional numbers.
const REG_ID_BIT: u8 = 1 << 3;
const Q_BIT: u8 = 1 << 4;

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
            q: (self.present & Q_BIT != 0).then_some(self.q),
            call_id: self.field(1).to_owned(),
            cseq: self.cseq,
            user_agent: self.user_agent.as_deref().map(str::to_owned),
            received: self.field(2).to_owned(),
            transport: self.transport.to_string(),
            flow_id: self.optional(FLOW).map(str::to_owned),
            instance_id: self.optional(INSTANCE).map(str::to_owned),
            reg_id: (self.present & REG_ID_BIT != 0).then_some(self.reg_id),
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
            serials: (0..SERIAL_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            flows: Mutex::default(),
            flow_hasher: RandomState::new(),
            deadlines: Mutex::default(),
            installs: AtomicU64::new(0),
            interned: Mutex::default(),
        }
    }

    fn shard(&self, endpoint_pk: i64) -> MutexGuard<'_, Shard> {
        lock(&self.shards[endpoint_pk.rem_euclid(SHARDS as i64) as usize])
    }

    fn stripe(endpoint_pk: i64) -> usize {
        endpoint_pk.rem_euclid(SERIAL_STRIPES as i64) as usize
    }

    /// The endpoint's REGISTER lock, held from reading its bindings until the new ones are
    /// installed.
    pub(crate) fn serial(&self, endpoint_pk: i64) -> &tokio::sync::Mutex<()> {
        &self.serials[Self::stripe(endpoint_pk)]
    }

    /// The locks of several endpoints, each once, in one global order (so two holders of
    /// several never wait for each other in a cycle).
    pub(crate) fn serials(&self, endpoints: &[i64]) -> Vec<&tokio::sync::Mutex<()>> {
        let mut stripes: Vec<usize> = endpoints.iter().map(|&pk| Self::stripe(pk)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        stripes.into_iter().map(|i| &self.serials[i]).collect()
    }

    /// All held bindings of the endpoint (expired ones too: the core ignores those).
    pub(crate) fn bindings(&self, endpoint_pk: i64) -> Vec<Binding> {
        self.shard(endpoint_pk)
            .get(&endpoint_pk)
            .map(|aor| {
                aor.bindings
                    .iter()
                    .map(|b| b.expanded(endpoint_pk))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The endpoint's bindings that are live at `now_ms`.
    pub(crate) fn live(&self, endpoint_pk: i64, now_ms: i64) -> Vec<Binding> {
        self.shard(endpoint_pk)
            .get(&endpoint_pk)
            .map(|aor| {
                aor.bindings
                    .iter()
                    .filter(|b| b.expires_at_ms > now_ms)
                    .map(|b| b.expanded(endpoint_pk))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether this node's connection `flow_id` carries one of the endpoint's bindings.
    pub(crate) fn on_flow(&self, endpoint_pk: i64, flow_id: &str) -> bool {
        self.shard(endpoint_pk)
            .get(&endpoint_pk)
            .is_some_and(|aor| {
                aor.bindings
                    .iter()
                    .any(|b| b.flow_id() == Some(flow_id) && *b.node_id == *self.node_id)
            })
    }

    /// Whether this node's connection `flow_id` carries a binding of any endpoint (one
    /// connection from an edge proxy carries many AORs).
    pub(crate) fn flow_in_use(&self, flow_id: &str) -> bool {
        self.endpoints_on_flow(flow_id)
            .into_iter()
            .any(|endpoint_pk| self.on_flow(endpoint_pk, flow_id))
    }

    /// Replaces the endpoint's bindings. Returns whether the earliest deadline of all moved
    /// forward (the expiry timer must wake earlier).
    pub(crate) fn install(&self, endpoint_pk: i64, bindings: &[Binding]) -> bool {
        let new: Box<[Compact]> = bindings.iter().map(|b| self.compact(b)).collect();
        let installed = self.installs.fetch_add(1, Ordering::AcqRel) + 1;
        let mut shard = self.shard(endpoint_pk);
        let old = shard.remove(&endpoint_pk);
        self.replace(endpoint_pk, &mut shard, old, new, installed)
    }

    /// Keeps only the bindings `keep` accepts; returns the others.
    pub(crate) fn retain(&self, endpoint_pk: i64, keep: impl Fn(&Binding) -> bool) -> Vec<Binding> {
        self.retain_unless_installed_after(endpoint_pk, u64::MAX, keep)
    }

    /// [`Location::retain`], unless the entry was installed after install count `installs`
    /// (it is newer than what `keep` was computed from).
    pub(crate) fn retain_unless_installed_after(
        &self,
        endpoint_pk: i64,
        installs: u64,
        keep: impl Fn(&Binding) -> bool,
    ) -> Vec<Binding> {
        let mut shard = self.shard(endpoint_pk);
        let Some(old) = shard.remove(&endpoint_pk) else {
            return Vec::new();
        };
        if old.installed > installs {
            shard.insert(endpoint_pk, old);
            return Vec::new();
        }
        let installed = old.installed;
        let (kept, dropped): (Vec<Compact>, Vec<Compact>) = old
            .bindings
            .into_vec()
            .into_iter()
            .partition(|b| keep(&b.expanded(endpoint_pk)));
        let old = AorState {
            bindings: dropped.into_boxed_slice(),
            deadline: old.deadline,
            installed,
        };
        let dropped: Vec<Binding> = old
            .bindings
            .iter()
            .map(|b| b.expanded(endpoint_pk))
            .collect();
        self.replace(
            endpoint_pk,
            &mut shard,
            Some(old),
            kept.into_boxed_slice(),
            installed,
        );
        dropped
    }

    /// Drops this node's bindings of the endpoint on connection `flow_id` that end with it
    /// ([`ends_with_connection`]); returns them.
    pub(crate) fn drop_flow(&self, endpoint_pk: i64, flow_id: &str) -> Vec<Binding> {
        self.retain(endpoint_pk, |b| {
            !(b.flow_id.as_deref() == Some(flow_id)
                && ends_with_connection(b)
                && b.node_id == *self.node_id)
        })
    }

    /// Puts `new` in place of `old` (already out of the map), keeping the flow index and the
    /// deadlines in step. `old`'s bindings are the ones leaving the indexes.
    fn replace(
        &self,
        endpoint_pk: i64,
        shard: &mut Shard,
        old: Option<AorState>,
        new: Box<[Compact]>,
        installed: u64,
    ) -> bool {
        let (old_bindings, old_deadline) = match &old {
            Some(old) => (&old.bindings[..], Some(old.deadline)),
            None => (&[][..], None),
        };
        self.index_flows(endpoint_pk, old_bindings, &new);
        let deadline = new.iter().map(|b| b.expires_at_ms).min();
        let earlier = self.schedule(endpoint_pk, old_deadline, deadline);
        if let Some(deadline) = deadline {
            shard.insert(
                endpoint_pk,
                AorState {
                    bindings: new,
                    deadline,
                    installed,
                },
            );
        }
        earlier
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
            let due = match lock(&self.deadlines).first() {
                Some(&(at, endpoint_pk)) if at <= now_ms => endpoint_pk,
                _ => return dropped,
            };
            let expired = self.retain(due, |b| b.expires_at_ms > now_ms).len();
            if expired == 0 {
                // Not held any more (or its deadline was stale): never look at it again.
                lock(&self.deadlines).retain(|&(_, endpoint_pk)| endpoint_pk != due);
            }
            dropped += expired;
        }
    }

    /// Moves the endpoint's deadline; returns whether the earliest one moved forward.
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
            .fold(0u8, |bits, (i, _)| bits | 1 << i)
            | if binding.reg_id.is_some() {
                REG_ID_BIT
            } else {
                0
            }
            | if binding.q.is_some() { Q_BIT } else { 0 };
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
            reg_id: binding.reg_id.unwrap_or_default(),
            q: binding.q.unwrap_or_default(),
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
