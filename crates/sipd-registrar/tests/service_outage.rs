//! A database outage and its end, on PostgreSQL (`SIPD_TEST_DATABASE_URL`): the service reaches
//! the database through a TCP relay the test cuts and restores. Skipped on SQLite, which has
//! no connection to lose.

mod service_support;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use service_support::*;
use sipd_store::testing::fresh_store;
use sipd_store::Store;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Relays TCP connections to `upstream` while up; going down closes every relayed connection
/// and refuses new ones.
struct Relay {
    addr: SocketAddr,
    up: watch::Sender<bool>,
}

impl Relay {
    async fn start(upstream: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, _) = watch::channel(true);
        let states = up.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut state = states.subscribe();
                if !*state.borrow() {
                    continue; // dropped: refused
                }
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = state.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Relay { addr, up }
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// `postgres://user@host:port/db?…` → (`host:port`, the URL with `relay` as host and port).
fn through(url: &str, relay: SocketAddr) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((user, host_port)) => (format!("{user}@"), host_port),
        None => (String::new(), authority),
    };
    (
        host_port.to_owned(),
        format!("{scheme}://{user}{relay}{path}"),
    )
}

#[tokio::test]
async fn outage_answers_503_and_the_service_recovers_and_resyncs() {
    let store = fresh_store().await;
    if !store.is_postgres() {
        eprintln!("skipped: set SIPD_TEST_DATABASE_URL to run on PostgreSQL");
        return;
    }
    let account = account(&store).await;
    let mut alice = endpoint(&store, account, "alice").await;
    let bob = endpoint(&store, account, "bob").await;
    let (upstream, _) = through(store.url(), "127.0.0.1:1".parse().unwrap());
    let relay = Relay::start(upstream).await;
    let mut options = store.options();
    options.url = through(store.url(), relay.addr).1;
    options.acquire_timeout = Duration::from_secs(1);
    let relayed = Store::connect(options).await.unwrap();
    let service = start(&relayed, "node-1").await;

    let mut phone = Client::new(&alice, "198.51.100.7", "udp-198.51.100.7:5060");
    let mut bobs_phone = Client::new(&bob, "198.51.100.9", "udp-198.51.100.9:5060");
    assert_eq!(phone.register(&service, 300).await.status, 200);
    let challenge = bobs_phone.send(&service, 300).await;
    bobs_phone.take_challenge(&challenge);

    relay.set_up(false);
    let refresh = phone.send(&service, 300).await;
    assert_eq!(refresh.status, 503, "{}", text(&refresh));
    let uncached = bobs_phone.send(&service, 300).await;
    assert_eq!(uncached.status, 503, "{}", text(&uncached));
    // Meanwhile alice's password changes on another node; this node's listener is cut off.
    change_password(&store, &mut alice, "changed-in-the-outage").await;

    relay.set_up(true);
    // Back: the listener reconnects and resyncs, dropping what the database no longer has.
    wait_until(&service, "the resync drops alice's bindings", || async {
        matches!(service.locate("alice", SystemTime::now()).await, Ok(Some(l)) if l.bindings.is_empty())
    })
    .await;
    let back = bobs_phone.register(&service, 300).await;
    assert_eq!(back.status, 200, "{}", text(&back));
    phone.password = alice.password.clone();
    let back = phone.register(&service, 300).await;
    assert_eq!(back.status, 200, "{}", text(&back));
    service.shutdown().await;
}
