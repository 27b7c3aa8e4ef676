//! TLS: configured and self-signed certificates, and reloading certificate files without a
//! restart (explicitly and on file change; SIGHUP is in its own test binary).

mod common;

use std::time::Duration;

use common::*;
use sipd_transport::{Transport, TransportConfig, TransportEvent};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn tls_with_configured_certificate_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let files = certificate_files(dir.path());
    let root = write_certificate(&files, "sip.example.test");
    let (transports, mut events) = start(TransportConfig {
        certificate: Some(files),
        ..config()
    })
    .await;
    let server = transports.local_addrs().tls.unwrap();
    let mut client = tls_connect(server, &root, "sip.example.test")
        .await
        .unwrap();
    client.write_all(&request("tls1")).await.unwrap();
    client.flush().await.unwrap();

    let inbound = next_message(&mut events).await;
    assert_eq!(inbound.message, request("tls1"));
    assert_eq!(inbound.flow.transport(), Transport::Tls);
    assert!(inbound.flow.to_string().starts_with("tls-"));
    transports
        .send(inbound.flow, response("tls1"))
        .await
        .unwrap();
    assert_eq!(
        read_exact(&mut client, response("tls1").len()).await,
        response("tls1")
    );

    client.write_all(b"\r\n\r\n").await.unwrap();
    client.flush().await.unwrap();
    assert_eq!(read_exact(&mut client, 2).await, b"\r\n");

    // TLS 1.2 is accepted too.
    let mut tls12 = tls12_connect(server, &root, "sip.example.test").await;
    tls12.write_all(&request("tls12")).await.unwrap();
    tls12.flush().await.unwrap();
    assert_eq!(next_message(&mut events).await.message, request("tls12"));

    // The wrong name is refused by the client; the server counts the failed handshake.
    assert!(tls_connect(server, &root, "other.example.test")
        .await
        .is_err());
    eventually(|| transports.counters().tls.handshake_failures == 1).await;

    drop(client);
    assert_eq!(next_close(&mut events).await, inbound.flow);
    transports.shutdown().await;
}

#[tokio::test]
async fn without_files_a_self_signed_certificate_names_the_domain() {
    let (transports, mut events) = start(config()).await;
    let server = transports.local_addrs().tls.unwrap();
    let presented = presented_certificate(server).await;
    // Trusting exactly that certificate, full verification for the domain succeeds.
    let mut client = tls_connect(server, &presented, "sip.example.test")
        .await
        .unwrap();
    client.write_all(&request("self")).await.unwrap();
    client.flush().await.unwrap();
    // The probing connection closes too; its close may be reported before or after.
    let mut messages = Vec::new();
    for _ in 0..2 {
        if let TransportEvent::Message(inbound) = next_event(&mut events).await {
            messages.push(inbound.message);
        }
    }
    assert_eq!(messages, [request("self")]);
    assert!(tls_connect(server, &presented, "elsewhere.test")
        .await
        .is_err());
    transports.shutdown().await;
}

#[tokio::test]
async fn reload_switches_new_handshakes_and_a_bad_file_keeps_the_old_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let files = certificate_files(dir.path());
    let first = write_certificate(&files, "sip.example.test");
    let (transports, mut events) = start(TransportConfig {
        certificate: Some(files.clone()),
        // Only explicit reloads in this test.
        certificate_poll_interval: Duration::from_secs(3600),
        ..config()
    })
    .await;
    let server = transports.local_addrs().tls.unwrap();
    let mut before = tls_connect(server, &first, "sip.example.test")
        .await
        .unwrap();

    let second = write_certificate(&files, "sip.example.test");
    transports.reload_certificates().unwrap();
    // Kept open so that no close events come between the messages below.
    let _after = tls_connect(server, &second, "sip.example.test")
        .await
        .unwrap();
    assert!(tls_connect(server, &first, "sip.example.test")
        .await
        .is_err());
    // A connection made before the reload keeps working.
    before.write_all(&request("before")).await.unwrap();
    before.flush().await.unwrap();
    assert_eq!(next_message(&mut events).await.message, request("before"));

    std::fs::write(&files.chain, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    assert!(transports.reload_certificates().is_err());
    let _still = tls_connect(server, &second, "sip.example.test")
        .await
        .unwrap();
    let counters = transports.counters();
    assert_eq!(counters.certificate_reloads, 1);
    assert_eq!(counters.certificate_reload_failures, 1);
    transports.shutdown().await;
}

#[tokio::test]
async fn changed_files_are_picked_up_without_being_asked() {
    let dir = tempfile::tempdir().unwrap();
    let files = certificate_files(dir.path());
    write_certificate(&files, "sip.example.test");
    let (transports, _events) = start(TransportConfig {
        certificate: Some(files.clone()),
        certificate_poll_interval: Duration::from_millis(20),
        ..config()
    })
    .await;
    let server = transports.local_addrs().tls.unwrap();
    // A different key length makes the change visible even within one mtime tick.
    let (chain, key, renewed) = certificate("sip.example.test");
    std::fs::write(&files.chain, format!("{chain}\n")).unwrap();
    std::fs::write(&files.key, key).unwrap();
    eventually(|| transports.counters().certificate_reloads >= 1).await;
    assert!(tls_connect(server, &renewed, "sip.example.test")
        .await
        .is_ok());
    transports.shutdown().await;
}
