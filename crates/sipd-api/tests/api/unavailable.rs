//! The database becomes unreachable: the API answers 503 JSON, then recovers by itself when it
//! comes back, without a restart.
//!
//! SQLite: another connection holds an exclusive lock on the database file (the API's store has
//! a short busy/acquire timeout). PostgreSQL: the API's store connects through a loopback TCP
//! proxy in this test, which is cut and restored.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use sipd_store::testing::fresh_store;
use sipd_store::{Store, StoreOptions};
use sqlx::Connection;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::common::{create_account, serve, Creds};

/// How long the API's store waits for the database before answering 503.
const SHORT_TIMEOUT: Duration = Duration::from_millis(300);

struct Probe {
    base: String,
    client: reqwest::Client,
    creds: Creds,
}

impl Probe {
    /// Status and `error` of `GET /health` and of an authenticated list.
    async fn statuses(&self) -> Vec<(StatusCode, Option<String>)> {
        let list = format!(
            "{}/api/v1/Account/{}/Endpoint/",
            self.base, self.creds.auth_id
        );
        let mut out = Vec::new();
        for (url, authenticated) in [(format!("{}/health", self.base), false), (list, true)] {
            let mut request = self.client.request(Method::GET, &url);
            if authenticated {
                request = request
                    .header("X-Auth-ID", &self.creds.auth_id)
                    .header("X-Auth-Token", &self.creds.auth_token);
            }
            let response = request.send().await.expect("the API answers");
            let status = response.status();
            let body: serde_json::Value = response.json().await.expect("a JSON body");
            out.push((status, body["error"].as_str().map(str::to_owned)));
        }
        out
    }

    async fn assert_unavailable(&self) {
        for (status, error) in self.statuses().await {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(error.as_deref(), Some("service unavailable"));
        }
    }

    async fn assert_available(&self) {
        for (status, error) in self.statuses().await {
            assert_eq!(status, StatusCode::OK, "{error:?}");
        }
    }
}

fn short_timeout(mut options: StoreOptions) -> StoreOptions {
    options.acquire_timeout = SHORT_TIMEOUT;
    options
}

#[tokio::test]
async fn database_outage_is_503_and_the_api_recovers_by_itself() {
    let test_store = fresh_store().await;
    let (_, creds) = create_account(&test_store, "Main", None).await;
    if test_store.is_postgres() {
        postgres_outage(&test_store.options(), creds).await;
    } else {
        // The lock needs every other connection to the file closed first.
        test_store.close().await;
        sqlite_outage(&test_store.options(), creds).await;
    }
}

async fn sqlite_outage(options: &StoreOptions, creds: Creds) {
    let mut locker = sqlx::SqliteConnection::connect(&options.url)
        .await
        .expect("open the SQLite file");
    sqlx::raw_sql("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
        .execute(&mut locker)
        .await
        .expect("lock the database");

    let store = Store::connect(short_timeout(options.clone()))
        .await
        .expect("lazy connect");
    let probe = Probe {
        base: serve(store).await,
        client: reqwest::Client::new(),
        creds,
    };
    probe.assert_unavailable().await;

    locker.close().await.expect("release the lock");
    probe.assert_available().await;
}

/// A loopback TCP proxy that can be cut (every connection dropped, new ones refused) and
/// restored.
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let open = Arc::new(AtomicBool::new(true));
        let links = Arc::new(Mutex::new(Vec::new()));
        let (accept_open, accept_links) = (open.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accept_open.load(Ordering::SeqCst) {
                    continue; // dropped: the connection closes at once
                }
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                accept_links.lock().unwrap().push(link);
            }
        });
        Proxy { port, open, links }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// `scheme://[user@]host:port/db?…` → (`host:port`, the URL with `replacement` instead).
fn split_host(url: &str, replacement: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("URL scheme");
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), authority),
    };
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    (host, format!("{scheme}://{user}{replacement}{tail}"))
}

async fn postgres_outage(options: &StoreOptions, creds: Creds) {
    let (upstream, _) = split_host(&options.url, "");
    let proxy = Proxy::start(upstream).await;
    let (_, proxied_url) = split_host(&options.url, &format!("127.0.0.1:{}", proxy.port));
    let mut proxied = short_timeout(options.clone());
    proxied.url = proxied_url;
    let store = Store::connect(proxied).await.expect("lazy connect");
    let probe = Probe {
        base: serve(store).await,
        client: reqwest::Client::new(),
        creds,
    };
    probe.assert_available().await;

    proxy.cut();
    probe.assert_unavailable().await;

    proxy.restore();
    probe.assert_available().await;
}
