//! Group commit of binding changes: concurrent REGISTERs share one transaction, and each is
//! answered only after the transaction holding its changes has committed.

use crate::{Backend, BindingChange, Result, Store, StoreError};
use std::collections::{BTreeSet, HashMap};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// Changes one transaction takes at most (a single larger request still goes in one).
pub const DEFAULT_MAX_BATCH_CHANGES: usize = 1_000;

/// Requests that may wait for the writer before `commit` itself waits (backpressure).
const QUEUE_CAPACITY: usize = 16_384;

/// Handle to a binding writer task; cheap to clone. Create one per store with
/// [`Store::binding_writer`] and share it.
///
/// While a transaction is in flight, new requests queue; the next transaction takes everything
/// queued, up to the batch limit. On PostgreSQL up to four transactions (at most half the
/// pool) may be in flight, never with an endpoint in common, so one endpoint's changes commit
/// in the order they were submitted. Within a transaction, the last change for a binding key
/// ([`crate::Binding::key`]) wins, and every request is acknowledged.
///
/// The task ends, after committing whatever is queued, when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct BindingWriter {
    requests: mpsc::Sender<CommitRequest>,
}

struct CommitRequest {
    changes: Vec<BindingChange>,
    done: oneshot::Sender<Result<()>>,
}

impl BindingWriter {
    /// Commit `changes` (in order, atomically) in the next group transaction; returns once it
    /// has committed.
    ///
    /// Errors: `InvalidReference("endpoint")` when an upsert names an endpoint that no longer
    /// exists (only this request fails: a failing transaction is retried in halves until the
    /// bad request is alone), `Unavailable` when the database cannot be reached (every request
    /// of that transaction fails). If the caller stops waiting, the changes are still committed.
    pub async fn commit(&self, changes: Vec<BindingChange>) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let (done, committed) = oneshot::channel();
        self.requests
            .send(CommitRequest { changes, done })
            .await
            .map_err(|_| writer_stopped())?;
        committed.await.map_err(|_| writer_stopped())?
    }
}

fn writer_stopped() -> StoreError {
    StoreError::Unavailable("binding writer stopped".to_owned())
}

impl Store {
    /// Start a group-commit writer for binding changes, with batches of up to
    /// [`DEFAULT_MAX_BATCH_CHANGES`] changes. Needs a tokio runtime.
    pub fn binding_writer(&self) -> BindingWriter {
        self.binding_writer_with_batch(DEFAULT_MAX_BATCH_CHANGES)
    }

    /// [`Store::binding_writer`] with another batch limit (at least 1).
    pub fn binding_writer_with_batch(&self, max_batch_changes: usize) -> BindingWriter {
        let (requests, queue) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run_writer(self.clone(), queue, max_batch_changes.max(1)));
        BindingWriter { requests }
    }
}

/// Transactions in flight at once on PostgreSQL: while some wait for their commit to reach the
/// disk, another executes. At most half the pool, so API requests and lookups still get
/// connections. SQLite has one writer at a time anyway (and a lock wait there means sleeping
/// in the busy handler), so one.
const POSTGRES_MAX_TRANSACTIONS_IN_FLIGHT: u32 = 4;

async fn run_writer(
    store: Store,
    mut queue: mpsc::Receiver<CommitRequest>,
    max_batch_changes: usize,
) {
    let max_in_flight = match store.backend {
        Backend::Postgres => {
            let pool_size = store.pool.options().get_max_connections();
            (pool_size / 2).clamp(1, POSTGRES_MAX_TRANSACTIONS_IN_FLIGHT) as usize
        }
        Backend::Sqlite => 1,
    };
    let mut in_flight = InFlight::default();
    // The request that did not fit in the previous batch, or touches an endpoint of a
    // transaction in flight: it opens the next batch, and nothing overtakes it.
    let mut carried: Option<CommitRequest> = None;
    loop {
        let slot_free = in_flight.batches.len() < max_in_flight;
        let first = match carried.take() {
            Some(request) if slot_free && !in_flight.touches(&request) => request,
            Some(request) => {
                carried = Some(request);
                in_flight.finish_one().await;
                continue;
            }
            None if !slot_free => {
                in_flight.finish_one().await;
                continue;
            }
            None => tokio::select! {
                request = queue.recv() => match request {
                    Some(request) if in_flight.touches(&request) => {
                        carried = Some(request);
                        continue;
                    }
                    Some(request) => request,
                    None => {
                        while !in_flight.batches.is_empty() {
                            in_flight.finish_one().await;
                        }
                        return;
                    }
                },
                Some(finished) = in_flight.batches.join_next_with_id() => {
                    in_flight.release(finished);
                    continue;
                }
            },
        };
        let mut batch = Batch::default();
        batch.push(first);
        while batch.changes.len() < max_batch_changes {
            match queue.try_recv() {
                Ok(request)
                    if batch.changes.len() + request.changes.len() > max_batch_changes
                        || in_flight.touches(&request) =>
                {
                    carried = Some(request);
                    break;
                }
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        in_flight.start(&store, batch);
    }
}

/// Transactions in flight and the endpoints they touch: a transaction in flight never shares
/// an endpoint with another, so changes to one endpoint commit in submission order (and
/// concurrent transactions never wait on each other's rows).
#[derive(Default)]
struct InFlight {
    batches: JoinSet<()>,
    endpoints: HashMap<tokio::task::Id, BTreeSet<i64>>,
    reserved: BTreeSet<i64>,
}

impl InFlight {
    fn touches(&self, request: &CommitRequest) -> bool {
        request
            .changes
            .iter()
            .any(|change| self.reserved.contains(&change.endpoint_pk()))
    }

    fn start(&mut self, store: &Store, batch: Batch) {
        let endpoints: BTreeSet<i64> = batch
            .changes
            .iter()
            .map(BindingChange::endpoint_pk)
            .collect();
        self.reserved.extend(endpoints.iter().copied());
        let store = store.clone();
        let task = self
            .batches
            .spawn(async move { batch.commit(&store).await });
        self.endpoints.insert(task.id(), endpoints);
    }

    async fn finish_one(&mut self) {
        if let Some(finished) = self.batches.join_next_with_id().await {
            self.release(finished);
        }
    }

    fn release(&mut self, finished: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        // A batch task that panicked dropped its waiters, who get `Unavailable`.
        let id = match finished {
            Ok((id, ())) => id,
            Err(err) => err.id(),
        };
        for endpoint_pk in self.endpoints.remove(&id).unwrap_or_default() {
            self.reserved.remove(&endpoint_pk);
        }
    }
}

/// The requests of one transaction: their changes back to back, and where each one starts.
#[derive(Default)]
struct Batch {
    changes: Vec<BindingChange>,
    /// `starts[i]..starts[i + 1]` are request `i`'s changes.
    starts: Vec<usize>,
    waiters: Vec<Option<oneshot::Sender<Result<()>>>>,
}

impl Batch {
    fn push(&mut self, request: CommitRequest) {
        self.starts.push(self.changes.len());
        self.changes.extend(request.changes);
        self.waiters.push(Some(request.done));
    }

    /// Commit all requests in one transaction. If it fails for a reason that may be one
    /// request's fault (a constraint), retry the two halves separately, down to single
    /// requests, so only the bad one fails; halves go in order, so the last change still wins.
    async fn commit(mut self, store: &Store) {
        let requests = self.waiters.len();
        self.starts.push(self.changes.len());
        let mut pending = vec![(0, requests)];
        while let Some((first, end)) = pending.pop() {
            let changes = &self.changes[self.starts[first]..self.starts[end]];
            match store.apply_binding_changes(changes).await {
                Ok(()) => self.answer(first, end, Ok(())),
                Err(err) if end - first == 1 || matches!(err, StoreError::Unavailable(_)) => {
                    self.answer(first, end, Err(err))
                }
                Err(_) => {
                    let middle = first + (end - first) / 2;
                    // Popped in order: first half, then second.
                    pending.push((middle, end));
                    pending.push((first, middle));
                }
            }
        }
    }

    fn answer(&mut self, first: usize, end: usize, outcome: Result<()>) {
        for waiter in self.waiters[first..end].iter_mut() {
            if let Some(waiter) = waiter.take() {
                // A caller that stopped waiting is not an error.
                let _ = waiter.send(outcome.clone());
            }
        }
    }
}
