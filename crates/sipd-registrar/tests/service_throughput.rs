//! REGISTER throughput of the service alone (digest check, binding decision, group commit,
//! install): requests are built and answered beforehand, so only the service's work is timed.
//! Ignored by default; run with
//! `cargo test --release -p sipd-registrar --test service_throughput -- --ignored --nocapture`.

mod service_support;

use std::time::{Instant, SystemTime};

use service_support::*;
use sip_message::Message;
use sipd_store::testing::fresh_store;

const DEVICES: usize = 2_000;
const REFRESHES: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run in release"]
async fn authenticated_refreshes_per_second() {
    let store = fresh_store().await;
    let account = account(&store).await;
    let service = start(&store, "node-1").await;
    let mut devices: Vec<(Client, Vec<Message>)> = Vec::with_capacity(DEVICES);
    for n in 0..DEVICES {
        let endpoint = endpoint(&store, account, &format!("user{n}")).await;
        let host = format!("10.{}.{}.{}", n / 65_536, n / 256 % 256, n % 256);
        let flow = format!("udp-{host}:5060");
        let mut phone = Client::new(&endpoint, &host, &flow);
        assert_eq!(phone.register(&service, 3600).await.status, 200);
        let requests = (0..REFRESHES).map(|_| phone.request(3600)).collect();
        devices.push((phone, requests));
    }

    let started = Instant::now();
    let tasks: Vec<_> = devices
        .into_iter()
        .map(|(phone, requests)| {
            let service = service.clone();
            tokio::spawn(async move {
                for request in requests {
                    let outcome = service
                        .handle_register(&request, phone.source, SystemTime::now())
                        .await;
                    assert_eq!(outcome.status, 200, "{}", text(&outcome));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let total = DEVICES * REFRESHES;
    println!(
        "{total} authenticated REGISTER refreshes in {elapsed:?}: {:.0}/s ({})",
        total as f64 / elapsed.as_secs_f64(),
        if store.is_postgres() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    service.shutdown().await;
}
