//! The real `sipd` binary, run in a temporary working directory: account creation, migrations,
//! serving the API, the config file and environment overrides, and a graceful stop.
//!
//! On SQLite by default; on a scratch PostgreSQL database (`sipd_cli_<random>`, dropped
//! afterwards) when SIPD_TEST_DATABASE_URL names a server.

mod common;

use common::{with_database_name, Sandbox, TIMEOUT};
use serde_json::Value;
use std::process::Output;
use tokio::process::Command;

async fn run(command: &mut Command) -> Output {
    tokio::time::timeout(TIMEOUT, command.output())
        .await
        .expect("sipd did not finish in time")
        .expect("sipd runs")
}

async fn run_ok(command: &mut Command) -> Output {
    let output = run(command).await;
    assert!(
        output.status.success(),
        "sipd failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn single_json_line(stdout: &[u8]) -> Value {
    let text = String::from_utf8(stdout.to_vec()).expect("stdout is UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one line on stdout, got {text:?}"
    );
    assert!(
        text.ends_with('\n'),
        "the line ends with a newline: {text:?}"
    );
    serde_json::from_str(lines[0]).expect("stdout is one JSON object")
}

fn string_field(object: &Value, name: &str) -> String {
    object[name]
        .as_str()
        .unwrap_or_else(|| panic!("`{name}` is a string in {object}"))
        .to_owned()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .expect("HTTP client")
}

#[tokio::test]
async fn account_create_prints_one_json_line_with_generated_credentials() {
    let sandbox = Sandbox::new().await;
    let output = run_ok(&mut sandbox.command(&["account", "create", "--name", "Acme"])).await;
    let credentials = single_json_line(&output.stdout);
    let object = credentials.as_object().expect("a JSON object");
    assert_eq!(
        object.len(),
        2,
        "only auth_id and auth_token: {credentials}"
    );
    let auth_id = string_field(&credentials, "auth_id");
    assert!(
        auth_id.starts_with("MA_") && auth_id.len() == 11,
        "{auth_id}"
    );
    assert!(!string_field(&credentials, "auth_token").is_empty());

    // A second account gets other credentials.
    let (second_id, _) = sandbox.create_account().await;
    assert_ne!(second_id, auth_id);
}

#[tokio::test]
async fn account_create_prints_the_given_credentials_and_logs_no_token() {
    let sandbox = Sandbox::new().await;
    let token = "given-token-0123456789abcdef";
    let output = run_ok(&mut sandbox.command(&[
        "account",
        "create",
        "--name",
        "Acme",
        "--auth-id",
        "MA_GIVEN001",
        "--auth-token",
        token,
    ]))
    .await;
    let credentials = single_json_line(&output.stdout);
    assert_eq!(string_field(&credentials, "auth_id"), "MA_GIVEN001");
    assert_eq!(string_field(&credentials, "auth_token"), token);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!log.contains(token), "the token is logged:\n{log}");

    // The same auth_id again is refused, with a message and nothing on stdout.
    let output = run(&mut sandbox.command(&[
        "account",
        "create",
        "--name",
        "Again",
        "--auth-id",
        "MA_GIVEN001",
    ]))
    .await;
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("sipd: error:"));
}

#[tokio::test]
async fn migrate_creates_the_database_and_the_secret_key_and_can_run_again() {
    let sandbox = Sandbox::new().await;
    run_ok(&mut sandbox.command(&["migrate"])).await;
    run_ok(&mut sandbox.command(&["migrate"])).await;

    // On PostgreSQL no SQLite file appears: the URL really went to the server.
    let sqlite_file = sandbox.path().join("data/sipd.db");
    assert_eq!(sqlite_file.is_file(), !sandbox.on_postgres());
    let key_file = sandbox.path().join("data/secret.key");
    let key = std::fs::read_to_string(&key_file).expect("data/secret.key exists");
    assert_eq!(key.trim().len(), 64);
    assert!(key.trim().chars().all(|c| c.is_ascii_hexdigit()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn serve_answers_health_authenticates_and_stops_on_sigterm() {
    let sandbox = Sandbox::new().await;
    let (auth_id, auth_token) = sandbox.create_account().await;

    let mut command = sandbox.command(&["serve"]);
    command.env("SIPD_API_LISTEN", "127.0.0.1:0");
    let server = sandbox.start(command).await;
    let client = http();

    let health = client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let endpoints = server.url(&format!("/api/v1/Account/{auth_id}/Endpoint/"));
    let reply = client
        .get(&endpoints)
        .header("X-Auth-ID", &auth_id)
        .header("X-Auth-Token", &auth_token)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().await.unwrap();
    assert!(body["objects"].is_array(), "{body}");

    let reply = client
        .get(&endpoints)
        .header("X-Auth-ID", &auth_id)
        .header("X-Auth-Token", "wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 401);

    let (status, log) = server.terminate().await;
    assert!(status.success(), "exit {status}:\n{}", log.join("\n"));
    let log = log.join("\n");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("sipd stopped"), "{log}");
    assert!(!log.contains(&auth_token), "the token is logged:\n{log}");
}

#[tokio::test]
async fn no_subcommand_means_serve_and_sigint_stops_it_too() {
    let sandbox = Sandbox::new().await;
    let mut command = sandbox.command(&[]);
    command.env("SIPD_API_LISTEN", "127.0.0.1:0");
    let mut server = sandbox.start(command).await;
    let health = http().get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let pid = server.pid().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    server.wait_for_log("SIGINT received").await;
    let status = server.wait().await;
    assert!(status.success(), "exit {status}");
}

#[tokio::test]
async fn a_config_file_is_read_from_config_or_from_the_working_directory() {
    let sandbox = Sandbox::new().await;
    // The default file, config/sipd.toml in the working directory, when --config is absent.
    std::fs::create_dir(sandbox.path().join("config")).unwrap();
    std::fs::write(
        sandbox.path().join("config/sipd.toml"),
        "[data]\ndir = \"default-file-state\"\n",
    )
    .unwrap();
    run_ok(&mut sandbox.command(&["migrate"])).await;
    assert!(sandbox
        .path()
        .join("default-file-state/secret.key")
        .is_file());

    // --config replaces it (given after the subcommand here).
    std::fs::write(
        sandbox.path().join("other.toml"),
        "[api]\nlisten = \"127.0.0.1:0\"\n[data]\ndir = \"other-state\"\n[log]\nformat = \"json\"\n",
    )
    .unwrap();
    let server = sandbox
        .start(sandbox.command(&["serve", "--config", "other.toml"]))
        .await;
    let health = http().get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let (status, log) = server.terminate().await;
    assert!(status.success(), "exit {status}:\n{}", log.join("\n"));
    assert!(sandbox.path().join("other-state/secret.key").is_file());
    for line in &log {
        let entry: Value = serde_json::from_str(line)
            .unwrap_or_else(|_| panic!("log.format = \"json\" gives JSON lines, not {line:?}"));
        assert!(entry["level"].is_string(), "{line}");
    }
}

#[tokio::test]
async fn environment_variables_override_the_config_file() {
    let sandbox = Sandbox::new().await;
    // Port 1 would be bound if the environment did not win.
    std::fs::write(
        sandbox.path().join("file.toml"),
        "[api]\nlisten = \"127.0.0.1:1\"\n[data]\ndir = \"file-state\"\n",
    )
    .unwrap();
    let mut command = sandbox.command(&["--config", "file.toml", "serve"]);
    command
        .env("SIPD_API_LISTEN", "127.0.0.1:0")
        .env("SIPD_DATA_DIR", "env-state")
        .env("SIPD_SIP_UDP", "off")
        // Matches no key: ignored.
        .env(
            "SIPD_TEST_DATABASE_URL",
            "postgres://nowhere.invalid/ignored",
        );
    let server = sandbox.start(command).await;
    assert_ne!(server.api.port(), 1);
    let (status, log) = server.terminate().await;
    assert!(status.success(), "exit {status}:\n{}", log.join("\n"));
    assert!(sandbox.path().join("env-state/secret.key").is_file());
    assert!(!sandbox.path().join("file-state").exists());
    assert!(
        log.iter().any(|line| line.contains("udp=off")),
        "{}",
        log.join("\n")
    );

    // A key given in the environment is used as is and never written to disk.
    let mut command = sandbox.command(&["migrate"]);
    command
        .env("SIPD_DATA_DIR", "keyed-state")
        .env("SIPD_SECURITY_SECRET_KEY", "ab".repeat(32));
    run_ok(&mut command).await;
    assert!(!sandbox.path().join("keyed-state/secret.key").exists());
}

#[tokio::test]
async fn a_bad_config_value_is_fatal_and_names_the_key() {
    let sandbox = Sandbox::new().await;
    let mut command = sandbox.command(&["serve"]);
    command.env("SIPD_SIP_TLS", "everywhere");
    let output = run(&mut command).await;
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("`sip.tls`") && message.contains("SIPD_SIP_TLS"),
        "{message}"
    );

    std::fs::write(sandbox.path().join("bad.toml"), "[api]\nlisten = 8080\n").unwrap();
    let output = run(&mut sandbox.command(&["--config", "bad.toml", "migrate"])).await;
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("`api.listen`") && message.contains("bad.toml"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unreachable_database_is_not_fatal_for_serve_but_is_for_migrate() {
    let sandbox = Sandbox::new().await;
    // Nothing listens on the discard port: connections are refused at once.
    let unreachable = "postgres://sipd:never-logged@127.0.0.1:9/sipd";

    let mut command = sandbox.command(&["serve"]);
    command
        .env("SIPD_API_LISTEN", "127.0.0.1:0")
        .env("SIPD_DATABASE_URL", unreachable)
        .env("SIPD_DATABASE_ACQUIRE_TIMEOUT_SECS", "1");
    let server = sandbox.start(command).await;
    let health = http().get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    let (status, log) = server.terminate().await;
    assert!(status.success(), "exit {status}:\n{}", log.join("\n"));
    let log = log.join("\n");
    assert!(
        !log.contains("never-logged"),
        "the database password is logged:\n{log}"
    );

    let mut command = sandbox.command(&["migrate"]);
    command
        .env("SIPD_DATABASE_URL", unreachable)
        .env("SIPD_DATABASE_ACQUIRE_TIMEOUT_SECS", "1");
    let output = run(&mut command).await;
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("cannot migrate the database"), "{message}");
    assert!(!message.contains("never-logged"), "{message}");
}

#[test]
fn scratch_database_urls_keep_the_server_and_options() {
    assert_eq!(
        with_database_name("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(with_database_name("postgres://h", "x"), "postgres://h/x");
    assert_eq!(
        with_database_name("postgres://h/db?sslmode=disable", "x"),
        "postgres://h/x?sslmode=disable"
    );
}
