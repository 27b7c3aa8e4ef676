//! The real `sipd` binary for SIP end-to-end tests: a temporary working directory, SQLite by
//! default or a scratch PostgreSQL database when SIPD_TEST_DATABASE_URL names a server, every
//! listener on a free 127.0.0.1 port, and REST API helpers.
#![allow(dead_code)] // Each test file uses a different part.

pub mod sip;

use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Upper bound for any one wait; a passing test waits for the event, never this long.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The SIP domain the tests serve (also the digest realm).
pub const DOMAIN: &str = "sip.example.test";

pub struct Sandbox {
    dir: tempfile::TempDir,
    postgres: Option<ScratchDatabase>,
}

struct ScratchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl Sandbox {
    pub async fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        let postgres = match std::env::var("SIPD_TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                Some(ScratchDatabase::create(admin_url).await)
            }
            _ => None,
        };
        Sandbox { dir, postgres }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the sandbox runs on a scratch PostgreSQL database (else SQLite).
    pub fn on_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// `sipd ARGS` in the sandbox: no SIPD_* variables from the test's environment; every
    /// listener on a free loopback port; the test domain.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sipd"));
        command
            .args(args)
            .current_dir(self.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SIPD_") {
                command.env_remove(name);
            }
        }
        if let Some(database) = &self.postgres {
            command.env("SIPD_DATABASE_URL", &database.url);
        }
        command.env("SIPD_API_LISTEN", "127.0.0.1:0");
        command.env("SIPD_SIP_DOMAIN", DOMAIN);
        for name in [
            "SIPD_SIP_UDP",
            "SIPD_SIP_TCP",
            "SIPD_SIP_TLS",
            "SIPD_SIP_WSS",
        ] {
            command.env(name, "127.0.0.1:0");
        }
        command.env("SIPD_LOG_LEVEL", "info");
        command
    }

    /// `sipd account create`: (auth_id, auth_token).
    pub async fn create_account(&self) -> (String, String) {
        let output = tokio::time::timeout(
            TIMEOUT,
            self.command(&["account", "create", "--name", "Acme"])
                .output(),
        )
        .await
        .expect("account create in time")
        .expect("sipd runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let credentials: Value =
            serde_json::from_slice(&output.stdout).expect("account create prints JSON");
        (
            credentials["auth_id"].as_str().unwrap().to_owned(),
            credentials["auth_token"].as_str().unwrap().to_owned(),
        )
    }

    /// Starts `sipd serve` and waits until its API and SIP listeners are up.
    pub async fn serve(&self) -> Server {
        let mut server = self.start(self.command(&["serve"])).await;
        server.wait_for_sip().await;
        server
    }

    /// Starts a serving `command` and waits until its API listens (SIP may come later, or
    /// never: it waits for the database schema).
    pub async fn start(&self, mut command: Command) -> Server {
        Server::start(&mut command).await
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(database) = self.postgres.take() {
            // Drop runs inside the test's runtime, which cannot be blocked on: use another.
            let dropped = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(database.drop_database())
            })
            .join();
            if let Ok(Err(error)) = dropped {
                eprintln!("could not drop the scratch database: {error}");
            }
        }
    }
}

impl ScratchDatabase {
    async fn create(admin_url: String) -> ScratchDatabase {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "sipd_cli_{}_{}_{}",
            std::process::id(),
            nanos,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let url = with_database_name(&admin_url, &name);
        let database = ScratchDatabase {
            admin_url,
            name,
            url,
        };
        database
            .admin(&format!("CREATE DATABASE {}", database.name))
            .await
            .expect("create the scratch database on SIPD_TEST_DATABASE_URL's server");
        database
    }

    async fn drop_database(self) -> Result<(), sqlx::Error> {
        self.admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .await
    }

    async fn admin(&self, sql: &str) -> Result<(), sqlx::Error> {
        use sqlx::Connection;
        let mut connection = sqlx::PgConnection::connect(&self.admin_url).await?;
        sqlx::raw_sql(sql).execute(&mut connection).await?;
        connection.close().await
    }
}

/// `postgres://u@h:5432/test?x=y` with its database name replaced.
pub fn with_database_name(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// A running `sipd serve`.
pub struct Server {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    log: Vec<String>,
    pub api: SocketAddr,
    /// Listener addresses by transport name (`udp`, `tcp`, `tls`, `wss`).
    pub sip: HashMap<String, SocketAddr>,
}

impl Server {
    async fn start(command: &mut Command) -> Server {
        let mut child = command.spawn().expect("start sipd serve");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (sender, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            lines,
            log: Vec::new(),
            api: SocketAddr::from(([0, 0, 0, 0], 0)),
            sip: HashMap::new(),
        };
        let line = server.wait_for_log("API listening on http://").await;
        let start = line.find("http://").unwrap() + "http://".len();
        let address: String = line[start..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '"')
            .collect();
        server.api = address.parse().expect("API address");
        server
    }

    /// Waits until the SIP listeners are up and records their addresses.
    pub async fn wait_for_sip(&mut self) {
        let line = self.wait_for_log("SIP listening").await;
        for field in line.split_whitespace() {
            if let Some((name, value)) = field.split_once('=') {
                if let Ok(address) = value.parse() {
                    self.sip.insert(name.to_owned(), address);
                }
            }
        }
    }

    /// `http://{api}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api)
    }

    /// The process id, e.g. to send it a signal.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("sipd is running")
    }

    /// Waits for the exit (after a signal sent by the test).
    pub async fn wait(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(TIMEOUT, self.child.wait())
            .await
            .expect("sipd exits in time")
            .expect("wait for sipd")
    }

    pub fn sip_addr(&self, transport: &str) -> SocketAddr {
        *self
            .sip
            .get(transport)
            .unwrap_or_else(|| panic!("no {transport} listener in {:?}", self.sip))
    }

    /// Waits for a stderr line containing `needle`.
    pub async fn wait_for_log(&mut self, needle: &str) -> String {
        if let Some(line) = self.log.iter().find(|line| line.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Ok(None) => panic!(
                    "sipd closed stderr before logging {needle:?}:\n{}",
                    self.log.join("\n")
                ),
                Err(_) => panic!(
                    "sipd did not log {needle:?} in time:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Whether sipd is still running (it did not crash).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then the exit status and the whole log.
    pub async fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().expect("sipd is running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid}");
        let exit = self.wait().await;
        while let Ok(Some(line)) = tokio::time::timeout(TIMEOUT, self.lines.recv()).await {
            self.log.push(line);
        }
        (exit, self.log)
    }
}

/// The REST API as one account.
pub struct Api {
    client: reqwest::Client,
    base: String,
    auth_id: String,
    auth_token: String,
}

impl Api {
    pub fn new(server: &Server, auth_id: &str, auth_token: &str) -> Api {
        Api {
            client: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .build()
                .expect("HTTP client"),
            base: format!("http://{}/api/v1/Account/{auth_id}", server.api),
            auth_id: auth_id.to_owned(),
            auth_token: auth_token.to_owned(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .header("X-Auth-ID", &self.auth_id)
            .header("X-Auth-Token", &self.auth_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply = request.send().await.expect("API request");
        let status = reply.status();
        let body: Value = reply.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {body}");
        body
    }

    /// Creates an endpoint; returns (endpoint_id, SIP username).
    pub async fn create_endpoint(&self, username: &str, password: &str) -> (String, String) {
        let body = self
            .call(
                reqwest::Method::POST,
                "/Endpoint/",
                Some(json!({ "username": username, "password": password, "alias": username })),
            )
            .await;
        (
            body["endpoint_id"]
                .as_str()
                .expect("endpoint_id")
                .to_owned(),
            body["username"].as_str().expect("username").to_owned(),
        )
    }

    pub async fn endpoint(&self, endpoint_id: &str) -> Value {
        self.call(
            reqwest::Method::GET,
            &format!("/Endpoint/{endpoint_id}/"),
            None,
        )
        .await
    }

    pub async fn change_password(&self, endpoint_id: &str, password: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/Endpoint/{endpoint_id}/"),
            Some(json!({ "password": password })),
        )
        .await;
    }
}
