//! Throughput of the group-commit binding writer: many concurrent single-change commits, each
//! answered only after its transaction committed (what a registrar does per REGISTER), then
//! the reload of 100,000 bindings at start.
//!
//! ```sh
//! cargo run --release -p sipd-store --example group_commit                 # SQLite
//! SIPD_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p sipd-store --example group_commit               # PostgreSQL
//! ```
//!
//! Optional arguments: `[commits] [concurrent tasks]` (default 20000 200).

use sipd_store::testing::fresh_store;
use sipd_store::{Binding, BindingChange, NewAccount, NewEndpoint, Store, StoreOptions};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

const ENDPOINTS: usize = 1_000;
const RELOAD_BINDINGS: usize = 100_000;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() -> BenchResult<()> {
    let mut args = std::env::args().skip(1);
    let commits: usize = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20_000);
    let tasks: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(200);
    let scratch = fresh_store().await;
    // The pool size of the default configuration (`[database] max_connections`).
    let store = Store::connect(StoreOptions {
        max_connections: 10,
        ..scratch.options()
    })
    .await?;
    let backend = if scratch.is_postgres() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let endpoints = create_endpoints(&store).await?;

    let writer = store.binding_writer();
    let started = Instant::now();
    let mut running = JoinSet::new();
    for task in 0..tasks {
        let writer = writer.clone();
        let endpoints = endpoints.clone();
        // Spread the commits evenly; a task re-registers its contacts (updates after inserts).
        let count = commits / tasks + usize::from(task < commits % tasks);
        running.spawn(async move {
            let mut latencies = Vec::with_capacity(count);
            for n in 0..count {
                let endpoint_pk = endpoints[(task * 7 + n) % endpoints.len()];
                let change = BindingChange::Upsert(sample_binding(
                    endpoint_pk,
                    format!("sip:t{task}-{}@192.0.2.1:5060", n % 5),
                ));
                let submitted = Instant::now();
                writer.commit(vec![change]).await?;
                latencies.push(submitted.elapsed());
            }
            BenchResult::Ok(latencies)
        });
    }
    let mut latencies = Vec::with_capacity(commits);
    while let Some(joined) = running.join_next().await {
        latencies.extend(joined??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "{backend}: {commits} single-change commits from {tasks} tasks in {:.2} s = {:.0} commits/s \
         (latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms)",
        elapsed.as_secs_f64(),
        commits as f64 / elapsed.as_secs_f64(),
        millis(percentile(&latencies, 50)),
        millis(percentile(&latencies, 99)),
        millis(latencies.last().copied().unwrap_or_default()),
    );

    // Reload at start: 100,000 live bindings in one query.
    let changes: Vec<BindingChange> = (0..RELOAD_BINDINGS)
        .map(|n| {
            BindingChange::Upsert(sample_binding(
                endpoints[n % endpoints.len()],
                format!("sip:reload{n}@192.0.2.2:5060"),
            ))
        })
        .collect();
    let started = Instant::now();
    for chunk in changes.chunks(10_000) {
        store.apply_binding_changes(chunk).await?;
    }
    let written = started.elapsed();
    let started = Instant::now();
    let live = store.live_bindings(now_ms()).await?;
    println!(
        "{backend}: {RELOAD_BINDINGS} bindings written in batches of 10000 in {:.2} s; \
         live_bindings returned {} rows in {:.0} ms",
        written.as_secs_f64(),
        live.len(),
        millis(started.elapsed()),
    );
    Ok(())
}

async fn create_endpoints(store: &Store) -> BenchResult<Vec<i64>> {
    let (account, _) = store
        .create_account(NewAccount {
            name: "bench".to_owned(),
            ..NewAccount::default()
        })
        .await?;
    let mut endpoints = Vec::with_capacity(ENDPOINTS);
    for n in 0..ENDPOINTS {
        let endpoint = store
            .create_endpoint(NewEndpoint {
                account_id: account.id,
                username: format!("bench{n}"),
                password: "bench password".to_owned(),
                alias: format!("bench {n}"),
                application_id: None,
                allow_voice: true,
                allow_message: true,
                allow_video: true,
                allow_same_domain: true,
                allow_other_domains: true,
                allow_phones: true,
                allow_apps: true,
            })
            .await?;
        endpoints.push(endpoint.id);
    }
    Ok(endpoints)
}

fn sample_binding(endpoint_pk: i64, contact_uri: String) -> Binding {
    let now = now_ms();
    Binding {
        endpoint_pk,
        contact_uri,
        expires_at_ms: now + 3_600_000,
        q: None,
        call_id: "a84b4c76e66710@pc33.example.com".to_owned(),
        cseq: 1,
        user_agent: Some("bench/1.0".to_owned()),
        received: "192.0.2.1:5060".to_owned(),
        transport: "udp".to_owned(),
        flow_id: None,
        instance_id: None,
        reg_id: None,
        path: None,
        node_id: "bench".to_owned(),
        updated_at_ms: now,
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    let index = (sorted.len() * percent / 100).min(sorted.len().saturating_sub(1));
    sorted.get(index).copied().unwrap_or_default()
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}
