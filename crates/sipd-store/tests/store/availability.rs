//! The store reports `Unavailable` when the database cannot serve it, and recovers by itself.

use crate::common::{main_account, WAIT};
use sipd_store::testing::fresh_store;
use sipd_store::{NewAccount, Store, StoreError};
use sqlx::{Connection, Executor};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::timeout;

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn sqlite_write_lock_held_elsewhere_is_unavailable_then_recovers() {
    let store = fresh_store().await;
    if store.is_postgres() {
        return; // PostgreSQL has no database-wide write lock; see the proxy test below.
    }
    let (account, _) = main_account(&store, "Before").await;
    let mut impatient_options = store.options();
    impatient_options.acquire_timeout = Duration::from_millis(200);
    let impatient = Store::connect(impatient_options).await.unwrap();

    let mut locker = sqlx::AnyConnection::connect(store.url()).await.unwrap();
    locker.execute("BEGIN EXCLUSIVE").await.unwrap();
    locker
        .execute("UPDATE accounts SET name = name WHERE id = 0")
        .await
        .unwrap();

    let blocked = timeout(WAIT, impatient.create_account(NewAccount::default()))
        .await
        .unwrap();
    assert_unavailable(blocked);
    // WAL: readers are not blocked by the writer.
    assert!(impatient.account_by_id(account.id).await.unwrap().is_some());

    locker.execute("ROLLBACK").await.unwrap();
    let (created, _) = timeout(WAIT, impatient.create_account(NewAccount::default()))
        .await
        .unwrap()
        .expect("writes work again once the lock is released");
    assert!(created.auth_id.starts_with("MA_"));
}

#[tokio::test]
async fn sqlite_file_and_folder_are_created() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("nested/deeper/sipd.db");
    let mut options =
        sipd_store::testing::test_options(format!("sqlite://{}?mode=rwc", path.display()));
    options.max_connections = 1;
    let store = Store::connect(options).await.unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.expect("migrations are idempotent");
    store.ping().await.unwrap();
    assert!(path.exists());
    let mut raw = sqlx::AnyConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    assert_eq!(mode, "wal");

    let implicit = folder.path().join("implicit/sipd.db");
    let options = sipd_store::testing::test_options(format!("sqlite://{}", implicit.display()));
    let store = Store::connect(options).await.unwrap();
    store.migrate().await.unwrap();
    assert!(implicit.exists(), "created without an explicit mode=rwc");
}

/// A TCP relay to the real PostgreSQL server that can be started and stopped, to make the
/// database disappear and come back on a fixed address.
struct Relay {
    /// Owns the listener and, through a `JoinSet`, every relayed connection.
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(port: u16, upstream: String) -> Relay {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let accept = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Relay { accept }
    }

    /// Close the listener and every relayed connection.
    async fn stop(self) {
        self.accept.abort();
        let _ = self.accept.await;
    }
}

/// `host:port` of a `postgres://user@host:port/db` URL, and the URL with the authority's
/// `host:port` replaced.
fn split_authority(url: &str) -> (String, impl Fn(&str) -> String + '_) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let authority = rest.split(['/', '?']).next().unwrap();
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((user, host_port)) => (Some(user), host_port),
        None => (None, authority),
    };
    let tail = &rest[authority.len()..];
    let rebuild = move |host_port: &str| match user {
        Some(user) => format!("{scheme}://{user}@{host_port}{tail}"),
        None => format!("{scheme}://{host_port}{tail}"),
    };
    (host_port.to_owned(), rebuild)
}

#[tokio::test]
async fn unreachable_postgres_is_unavailable_then_recovers() {
    let store = fresh_store().await;
    if !store.is_postgres() {
        return; // Needs a server to make disappear; SQLite's counterpart is the lock test.
    }
    let (account, _) = main_account(&store, "Acme").await;
    let (upstream, with_host_port) = split_authority(store.url());
    // A port nobody listens on (bound, then released).
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut options = store.options();
    options.url = with_host_port(&format!("127.0.0.1:{port}"));
    options.acquire_timeout = Duration::from_millis(500);

    // Connecting is lazy: a dead database at start is not an error, requests are.
    let relayed = Store::connect(options).await.expect("lazy connect");
    assert_unavailable(timeout(WAIT, relayed.ping()).await.unwrap());
    assert_unavailable(
        timeout(WAIT, relayed.account_by_id(account.id))
            .await
            .unwrap(),
    );

    let relay = Relay::start(port, upstream.clone()).await;
    timeout(WAIT, relayed.ping())
        .await
        .unwrap()
        .expect("recovers when the database appears");
    let read = timeout(WAIT, relayed.account_by_id(account.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.map(|a| a.id), Some(account.id));

    relay.stop().await;
    assert_unavailable(
        timeout(WAIT, relayed.account_by_id(account.id))
            .await
            .unwrap(),
    );

    let relay = Relay::start(port, upstream).await;
    let read = timeout(WAIT, relayed.account_by_id(account.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.map(|a| a.id), Some(account.id));
    relayed.close().await;
    relay.stop().await;
}
