//! SIGHUP reloads the certificate. Alone in its test binary: the signal reaches the whole
//! process, and would reload other tests' certificates.

mod common;

use std::time::Duration;

use common::*;
use sipd_transport::TransportConfig;

#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let files = certificate_files(dir.path());
    write_certificate(&files, "sip.example.test");
    // Started first, so SIGHUP is handled (not fatal) in this process from here on.
    let (transports, _events) = start(TransportConfig {
        certificate: Some(files.clone()),
        certificate_poll_interval: Duration::from_secs(3600),
        ..config()
    })
    .await;
    let server = transports.local_addrs().tls.unwrap();
    let renewed = write_certificate(&files, "sip.example.test");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    eventually(|| transports.counters().certificate_reloads >= 1).await;
    assert!(tls_connect(server, &renewed, "sip.example.test")
        .await
        .is_ok());
    transports.shutdown().await;
}
