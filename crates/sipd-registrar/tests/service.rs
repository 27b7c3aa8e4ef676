//! The location service and REGISTER pipeline over a real store: SQLite by default, PostgreSQL
//! with `SIPD_TEST_DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`).

mod service_support;

use std::time::SystemTime;

use service_support::*;
use sipd_registrar::service::RegistrarService;
use sipd_store::testing::fresh_store;
use sipd_store::{Binding, Scope, Store};

async fn stored_contacts(store: &Store, endpoint_pk: i64) -> Vec<String> {
    let mut contacts: Vec<String> = store
        .bindings_of_endpoint(endpoint_pk, now_ms())
        .await
        .expect("read bindings")
        .into_iter()
        .map(|b| b.contact_uri)
        .collect();
    contacts.sort();
    contacts
}

async fn looked_up(service: &RegistrarService, username: &str) -> Vec<String> {
    let mut contacts: Vec<String> = live_bindings(service, username, SystemTime::now())
        .await
        .into_iter()
        .map(|b| b.contact_uri)
        .collect();
    contacts.sort();
    contacts
}

/// Sends with the current nonce, then with a fresh one; both must get the same refusal.
async fn refused_twice(phone: &mut Client, service: &RegistrarService) -> u16 {
    let first = phone.send(service, 300).await;
    assert_eq!(first.status, 401, "{}", text(&first));
    phone.take_challenge(&first);
    let second = phone.send(service, 300).await;
    assert_eq!(second.flow_registered, None);
    second.status
}

/// (reg-id, flow id) of the endpoint's stored bindings with Contact URI `uri`, sorted.
async fn stored_flows(store: &Store, endpoint_pk: i64, uri: &str) -> Vec<(Option<i64>, String)> {
    flows(
        store
            .bindings_of_endpoint(endpoint_pk, now_ms())
            .await
            .expect("read bindings"),
        uri,
    )
}

/// (reg-id, flow id) of the user's bindings in the service with Contact URI `uri`, sorted.
async fn looked_up_flows(
    service: &RegistrarService,
    username: &str,
    uri: &str,
) -> Vec<(Option<i64>, String)> {
    flows(
        live_bindings(service, username, SystemTime::now()).await,
        uri,
    )
}

fn flows(bindings: Vec<Binding>, uri: &str) -> Vec<(Option<i64>, String)> {
    let mut flows: Vec<_> = bindings
        .into_iter()
        .filter(|b| b.contact_uri == uri)
        .map(|b| (b.reg_id, b.flow_id.unwrap_or_default()))
        .collect();
    flows.sort();
    flows
}

/// The `+sip.instance` of the devices registering several flows.
const DEVICE: &str = "\"<urn:uuid:00000000-0000-1000-8000-00000000f10e>\"";

/// One flow of `endpoint`'s outbound device (RFC 5626): its REGISTERs carry `contact_uri`
/// (the same on every flow), the device's instance id and `reg_id`, over `transport` flow
/// `flow_id` from its own source port.
fn device_flow(endpoint: &Endpoint, contact_uri: &str, reg_id: u16, flow_id: &str) -> Client {
    let mut flow = Client::new(endpoint, "198.51.100.7", flow_id);
    flow.contact = format!("<{contact_uri}>;+sip.instance={DEVICE};reg-id={reg_id}");
    flow.call_id = format!("call-{}-flow-{reg_id}", endpoint.username);
    flow.source.remote.set_port(40_000 + reg_id);
    flow.headers.push("Supported: outbound".to_owned());
    flow
}

/// Every row of the registrations table, expired ones included.
async fn all_rows(store: &Store) -> usize {
    store.live_bindings(0).await.expect("read bindings").len()
}

#[tokio::test]
async fn register_is_durable_before_the_200_then_refresh_and_unregister() {
    let store = fresh_store().await;
    let other = Store::connect(store.options()).await.unwrap();
    let account = account(&store).await;
    let alice = endpoint(&store, account, "alice").await;
    let service = start(&store, "node-1").await;
    let mut phone = Client::new(&alice, "198.51.100.7", "udp-198.51.100.7:5060");

    let challenge = phone.send(&service, 300).await;
    assert_eq!(challenge.status, 401);
    assert_eq!(challenge.flow_registered, None);
    assert!(looked_up(&service, "alice").await.is_empty());
    phone.take_challenge(&challenge);

    let ok = phone.send(&service, 300).await;
    assert_eq!(ok.status, 200, "{}", text(&ok));
    assert_eq!(ok.flow_registered, Some(true));
    let contact = "sip:alice@198.51.100.7:5060;transport=udp";
    // Read through another pool: committed, not just visible to the service's connection.
    assert_eq!(stored_contacts(&other, alice.pk).await, [contact]);
    let bindings = live_bindings(&service, "alice", SystemTime::now()).await;
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].received, "198.51.100.7:5060");
    assert_eq!(bindings[0].transport, "udp");
    assert_eq!(
        bindings[0].flow_id.as_deref(),
        Some("udp-198.51.100.7:5060")
    );
    assert_eq!(bindings[0].user_agent.as_deref(), Some("test-phone/1.0"));
    assert_eq!(bindings[0].node_id, "node-1");
    let first_expiry = bindings[0].expires_at_ms;

    // Refresh: same binding, later expiry, still one row.
    let refreshed = phone.register(&service, 600).await;
    assert_eq!(refreshed.status, 200, "{}", text(&refreshed));
    let bindings = live_bindings(&service, "alice", SystemTime::now()).await;
    assert_eq!(bindings.len(), 1);
    assert!(bindings[0].expires_at_ms > first_expiry);
    assert_eq!(stored_contacts(&other, alice.pk).await, [contact]);

    let gone = phone.register(&service, 0).await;
    assert_eq!(gone.status, 200, "{}", text(&gone));
    assert_eq!(gone.flow_registered, Some(false));
    assert!(looked_up(&service, "alice").await.is_empty());
    assert!(stored_contacts(&other, alice.pk).await.is_empty());
    assert!(looked_up(&service, "nobody").await.is_empty());
    service.shutdown().await;
}

#[tokio::test]
async fn concurrent_registers_of_one_aor_are_decided_one_after_the_other() {
    let store = fresh_store().await;
    let account = account(&store).await;
    let alice = endpoint(&store, account, "alice").await;
    let bob = endpoint(&store, account, "bob").await;
    let service = start(&store, "node-1").await;

    // Ten devices of alice (the limit is three) and one of bob, each with its own nonce.
    let mut phones = Vec::new();
    for device in 0..10 {
        let host = format!("198.51.100.{}", device + 1);
        let flow = format!("udp-{host}:5060");
        let mut phone = Client::new(&alice, &host, &flow);
        let challenge = phone.send(&service, 300).await;
        phone.take_challenge(&challenge);
        phones.push(phone);
    }
    let mut bobs_phone = Client::new(&bob, "203.0.113.5", "udp-203.0.113.5:5060");
    let challenge = bobs_phone.send(&service, 300).await;
    bobs_phone.take_challenge(&challenge);
    phones.push(bobs_phone);

    let tasks: Vec<_> = phones
        .into_iter()
        .map(|mut phone| {
            let service = service.clone();
            tokio::spawn(async move { phone.send(&service, 300).await.status })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    // Each decision saw the one before: the limit holds, and memory is what was committed.
    let in_memory = looked_up(&service, "alice").await;
    assert_eq!(in_memory.len(), 3, "{in_memory:?}");
    assert_eq!(stored_contacts(&store, alice.pk).await, in_memory);
    assert_eq!(looked_up(&service, "bob").await.len(), 1);
    service.shutdown().await;
}

#[tokio::test]
async fn out_of_order_cseq_is_refused_after_a_newer_one() {
    let store = fresh_store().await;
    let account = account(&store).await;
    let alice = endpoint(&store, account, "alice").await;
    let service = start(&store, "node-1").await;
    let mut phone = Client::new(&alice, "198.51.100.7", "udp-198.51.100.7:5060");
    assert_eq!(phone.register(&service, 300).await.status, 200);
    let mut late = phone.clone();
    late.cseq -= 2; // a REGISTER sent before the accepted one, arriving after it
    let outcome = late.send(&service, 300).await;
    assert_eq!(outcome.status, 500, "{}", text(&outcome));
    assert_eq!(outcome.flow_registered, None);
    assert_eq!(looked_up(&service, "alice").await.len(), 1);
    service.shutdown().await;
}

#[tokio::test]
async fn password_change_drops_bindings_and_the_old_password() {
    let store = fresh_store().await;
    let account = account(&store).await;
    let mut alice = endpoint(&store, account, "alice").await;
    let service = start(&store, "node-1").await;
    // On PostgreSQL, a second node learns the change through the database.
    let second_store = Store::connect(store.options()).await.unwrap();
    let second = store.is_postgres().then_some(());
    let second = match second {
        Some(()) => Some(start(&second_store, "node-2").await),
        None => None,
    };

    let mut phone = Client::new(&alice, "198.51.100.7", "tcp-1");
    assert_eq!(phone.register(&service, 300).await.status, 200);
    let mut other_phone = Client::new(&alice, "198.51.100.8", "udp-198.51.100.8:5060");
    if let Some(second) = &second {
        assert_eq!(other_phone.register(second, 300).await.status, 200);
        assert_eq!(looked_up(second, "alice").await.len(), 1);
    }

    change_password(&store, &mut alice, "new-secret").await;
    wait_until(&service, "the service drops alice's bindings", || async {
        looked_up(&service, "alice").await.is_empty()
    })
    .await;
    // The old password no longer works, even with a fresh nonce.
    assert_eq!(refused_twice(&mut phone, &service).await, 401);
    if let Some(second) = &second {
        wait_until(second, "the second node drops alice's bindings", || async {
            looked_up(second, "alice").await.is_empty()
        })
        .await;
        assert_eq!(refused_twice(&mut other_phone, second).await, 401);
    }
    assert!(stored_contacts(&store, alice.pk).await.is_empty());

    phone.password = alice.password.clone();
    let accepted = phone.register(&service, 300).await;
    assert_eq!(accepted.status, 200, "{}", text(&accepted));
    if let Some(second) = &second {
        other_phone.password = alice.password.clone();
        assert_eq!(other_phone.register(second, 300).await.status, 200);
        second.shutdown().await;
    }
    assert_eq!(
        stored_contacts(&store, alice.pk).await.len(),
        1 + usize::from(second.is_some())
    );
    service.shutdown().await;
}

#[tokio::test]
async fn endpoint_deletion_drops_bindings_and_credentials() {
    let store = fresh_store().await;
    let account = account(&store).await;
    let alice = endpoint(&store, account, "alice").await;
    let bob = endpoint(&store, account, "bob").await;
    let service = start(&store, "node-1").await;
    let second_store = Store::connect(store.options()).await.unwrap();
    let second = if store.is_postgres() {
        Some(start(&second_store, "node-2").await)
    } else {
        None
    };
    let mut phone = Client::new(&alice, "198.51.100.7", "udp-198.51.100.7:5060");
    let mut bobs_phone = Client::new(&bob, "198.51.100.9", "udp-198.51.100.9:5060");
    assert_eq!(phone.register(&service, 300).await.status, 200);
    assert_eq!(bobs_phone.register(&service, 300).await.status, 200);
    if let Some(second) = &second {
        let mut phone = Client::new(&alice, "198.51.100.8", "udp-198.51.100.8:5060");
        assert_eq!(phone.register(second, 300).await.status, 200);
    }

    assert!(store
        .delete_endpoint(Scope::Account(account), &alice.endpoint_id)
        .await
        .unwrap());
    wait_until(&service, "the service drops alice", || async {
        looked_up(&service, "alice").await.is_empty()
    })
    .await;
    if let Some(second) = &second {
        wait_until(second, "the second node drops alice", || async {
            looked_up(second, "alice").await.is_empty()
        })
        .await;
        second.shutdown().await;
    }
    assert_eq!(refused_twice(&mut phone, &service).await, 401);
    assert_eq!(looked_up(&service, "bob").await.len(), 1);
    service.shutdown().await;
}

#[tokio::test]
async fn expired_bindings_leave_memory_and_database() {
    let store = fresh_store().await;
    let account = account(&store).await;
    let alice = endpoint(&store, account, "alice").await;
    let bob = endpoint(&store, account, "bob").await;
    let service = start(&store, "node-1").await;
    let mut phone = Client::new(&alice, "198.51.100.7", "udp-198.51.100.7:5060");
    let mut bobs_phone = Client::new(&bob, "198.51.100.9", "udp-198.51.100.9:5060");
    assert_eq!(bobs_phone.register(&service, 300).await.status, 200);
    assert_eq!(phone.register(&service, 1).await.status, 200);
    assert_eq!(all_rows(&store).await, 2);

    // A lookup a second later does not see it, whatever the timer did.
    let later = SystemTime::now() + std::time::Duration::from_millis(1001);
    assert!(live_bindings(&service, "alice", later).await.is_empty());

    wait_until(&service, "the expired row is purged", || async {
        all_rows(&store).await == 1
    })
    .await;
    assert!(looked_up(&service, "alice").await.is_empty());
    assert_eq!(looked_up(&service, "bob").await.len(), 1);
    service.shutdown().await;
}

#[tokio::test]
async fn closed_flow_drops_websocket_and_outbound_bindings_but_not_tcp_or_tls_ones() {
    let store = fresh_store().await;
    let account = account(&store).await;
    let alice = endpoint(&store, account, "alice").await;
    let bob = endpoint(&store, account, "bob").await;
    let carol = endpoint(&store, account, "carol").await;
    let dave = endpoint(&store, account, "dave").await;
    let service = start(&store, "node-1").await;
    // Alice: a browser on a WebSocket and a phone on UDP. Bob and Carol: phones on TCP and
    // TLS without reg-id. Dave: an RFC 5626 device with a flow on TCP.
    let mut browser = Client::new(&alice, "198.51.100.7", "ws-7");
    let mut udp_phone = Client::new(&alice, "198.51.100.8", "udp-198.51.100.8:5060");
    let mut tcp_phone = Client::new(&bob, "198.51.100.9", "tcp-8");
    let mut tls_phone = Client::new(&carol, "198.51.100.10", "tls-9");
    let daves_uri = "sip:dave@198.51.100.11:5060;transport=tcp;ob";
    let mut daves_flow = device_flow(&dave, daves_uri, 1, "tcp-10");
    for phone in [
        &mut browser,
        &mut udp_phone,
        &mut tcp_phone,
        &mut tls_phone,
        &mut daves_flow,
    ] {
        let ok = phone.register(&service, 300).await;
        assert_eq!(ok.status, 200, "{}", text(&ok));
        assert_eq!(ok.flow_registered, Some(true), "pinned as before");
    }
    assert_eq!(looked_up(&service, "alice").await.len(), 2);

    service.flow_closed("tcp-11".parse().unwrap()); // another connection: nothing happens
    for flow in ["ws-7", "tcp-8", "tls-9", "tcp-10"] {
        service.flow_closed(flow.parse().unwrap());
    }
    let alices = looked_up(&service, "alice").await;
    assert_eq!(alices, ["sip:alice@198.51.100.8:5060;transport=udp"]);
    assert!(looked_up(&service, "dave").await.is_empty());
    // TCP and TLS bindings stay, with the flow they were made on, for the proxy to reach
    // over a new connection to their address.
    let bobs = live_bindings(&service, "bob", SystemTime::now()).await;
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].flow_id.as_deref(), Some("tcp-8"));
    assert_eq!(bobs[0].received, "198.51.100.9:5060");
    assert_eq!(looked_up(&service, "carol").await.len(), 1);

    // Bob's phone connects again and refreshes: the same binding, on the new connection.
    let mut reconnected = tcp_phone.clone();
    reconnected.source.flow = "tcp-12".parse().unwrap();
    let ok = reconnected.register(&service, 300).await;
    assert_eq!(ok.status, 200, "{}", text(&ok));
    let bobs = live_bindings(&service, "bob", SystemTime::now()).await;
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].flow_id.as_deref(), Some("tcp-12"));

    // Shutdown waits for the background deletes.
    service.shutdown().await;
    assert_eq!(stored_contacts(&store, alice.pk).await, alices);
    assert!(stored_contacts(&store, dave.pk).await.is_empty());
    assert_eq!(stored_contacts(&store, bob.pk).await.len(), 1);
    assert_eq!(stored_contacts(&store, carol.pk).await.len(), 1);
}

#[tokio::test]
async fn two_flows_with_one_contact_are_two_bindings_until_one_closes() {
    // A device with two connections (RFC 5626 §4.2), the same Contact URI on both.
    let store = fresh_store().await;
    let other = Store::connect(store.options()).await.unwrap();
    let account = account(&store).await;
    let alice = endpoint(&store, account, "alice").await;
    let service = start(&store, "node-1").await;
    let uri = "sip:alice@198.51.100.7:5060;transport=tcp;ob";
    let mut first = device_flow(&alice, uri, 1, "tcp-1");
    let mut second = device_flow(&alice, uri, 2, "tcp-2");
    for flow in [&mut first, &mut second] {
        let ok = flow.register(&service, 300).await;
        assert_eq!(ok.status, 200, "{}", text(&ok));
        assert!(text(&ok).contains("Require: outbound"), "{}", text(&ok));
        assert_eq!(ok.flow_registered, Some(true));
    }
    let both = [(Some(1), "tcp-1".to_owned()), (Some(2), "tcp-2".to_owned())];
    assert_eq!(looked_up_flows(&service, "alice", uri).await, both);
    assert_eq!(stored_flows(&other, alice.pk, uri).await, both);

    // A refresh of one flow leaves the other.
    assert_eq!(first.register(&service, 600).await.status, 200);
    assert_eq!(looked_up_flows(&service, "alice", uri).await, both);
    assert_eq!(stored_flows(&other, alice.pk, uri).await, both);

    service.flow_closed("tcp-1".parse().unwrap());
    let left = [(Some(2), "tcp-2".to_owned())];
    assert_eq!(looked_up_flows(&service, "alice", uri).await, left);
    // Shutdown waits for the background delete.
    service.shutdown().await;
    assert_eq!(stored_flows(&other, alice.pk, uri).await, left);
}

#[tokio::test]
async fn a_connection_shared_by_two_aors_stays_registered_until_both_leave() {
    // An edge proxy or SBC carries many devices over one connection.
    let store = fresh_store().await;
    let account = account(&store).await;
    let alice = endpoint(&store, account, "alice").await;
    let bob = endpoint(&store, account, "bob").await;
    let service = start(&store, "node-1").await;
    let mut alices = Client::new(&alice, "198.51.100.7", "tcp-3");
    let mut bobs = Client::new(&bob, "198.51.100.7", "tcp-3");
    assert_eq!(
        alices.register(&service, 300).await.flow_registered,
        Some(true)
    );
    assert_eq!(
        bobs.register(&service, 300).await.flow_registered,
        Some(true)
    );

    let alice_left = alices.register(&service, 0).await;
    assert_eq!(alice_left.status, 200, "{}", text(&alice_left));
    assert_eq!(alice_left.flow_registered, Some(true), "bob is still on it");
    let bob_left = bobs.register(&service, 0).await;
    assert_eq!(bob_left.flow_registered, Some(false));
    service.shutdown().await;
}

#[tokio::test]
async fn restart_reloads_bindings_but_not_those_that_ended_with_their_connection() {
    let store = fresh_store().await;
    let account = account(&store).await;
    let alice = endpoint(&store, account, "alice").await;
    let bob = endpoint(&store, account, "bob").await;
    let carol = endpoint(&store, account, "carol").await;
    let dave = endpoint(&store, account, "dave").await;
    let service = start(&store, "node-1").await;
    let mut udp_phone = Client::new(&alice, "198.51.100.7", "udp-198.51.100.7:5060");
    let mut tcp_phone = Client::new(&bob, "198.51.100.8", "tcp-1");
    let mut browser = Client::new(&dave, "198.51.100.10", "wss-2");
    assert_eq!(udp_phone.register(&service, 300).await.status, 200);
    assert_eq!(tcp_phone.register(&service, 300).await.status, 200);
    assert_eq!(browser.register(&service, 300).await.status, 200);
    // Carol's connection is held by another node, which is still up.
    let elsewhere = start(&store, "node-2").await;
    let mut carols_phone = Client::new(&carol, "198.51.100.9", "ws-1");
    assert_eq!(carols_phone.register(&elsewhere, 300).await.status, 200);
    service.shutdown().await;
    drop(service);

    let restarted = start(&store, "node-1").await;
    assert_eq!(
        looked_up(&restarted, "alice").await,
        ["sip:alice@198.51.100.7:5060;transport=udp"]
    );
    // Bob's TCP binding outlives the process as it outlives its connection.
    let bobs = live_bindings(&restarted, "bob", SystemTime::now()).await;
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].flow_id.as_deref(), Some("tcp-1"));
    assert_eq!(stored_contacts(&store, bob.pk).await.len(), 1);
    // Dave's WebSocket died with the process.
    assert!(looked_up(&restarted, "dave").await.is_empty());
    assert!(stored_contacts(&store, dave.pk).await.is_empty());
    assert_eq!(looked_up(&restarted, "carol").await.len(), 1);
    // The reloaded bindings are the ones refreshes and CSeq checks run against.
    assert_eq!(udp_phone.register(&restarted, 300).await.status, 200);
    assert_eq!(looked_up(&restarted, "alice").await.len(), 1);
    let mut reconnected = tcp_phone.clone();
    reconnected.source.flow = "tcp-2".parse().unwrap();
    assert_eq!(reconnected.register(&restarted, 300).await.status, 200);
    let bobs = live_bindings(&restarted, "bob", SystemTime::now()).await;
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].flow_id.as_deref(), Some("tcp-2"));
    restarted.shutdown().await;
    elsewhere.shutdown().await;
}

#[tokio::test]
async fn restart_reloads_every_flow_of_a_contact() {
    let store = fresh_store().await;
    let account = account(&store).await;
    let alice = endpoint(&store, account, "alice").await;
    let bob = endpoint(&store, account, "bob").await;
    let service = start(&store, "node-1").await;
    // Alice's device: two UDP flows (they outlive the process) and one connection of this
    // node (it dies with it), all with one Contact URI.
    let alices = "sip:alice@198.51.100.7:5060;ob";
    let mut udp_flows = [
        device_flow(&alice, alices, 1, "udp-198.51.100.7:40001"),
        device_flow(&alice, alices, 2, "udp-198.51.100.7:40002"),
    ];
    let mut tcp_flow = device_flow(&alice, alices, 3, "tcp-1");
    for flow in udp_flows.iter_mut().chain([&mut tcp_flow]) {
        let ok = flow.register(&service, 300).await;
        assert_eq!(ok.status, 200, "{}", text(&ok));
    }
    assert_eq!(looked_up_flows(&service, "alice", alices).await.len(), 3);
    // Bob's device: two connections held by another node, which is still up.
    let elsewhere = start(&store, "node-2").await;
    let bobs = "sip:bob@198.51.100.8:5060;transport=tcp;ob";
    for (reg_id, flow_id) in [(1, "tcp-1"), (2, "tcp-2")] {
        let mut flow = device_flow(&bob, bobs, reg_id, flow_id);
        assert_eq!(flow.register(&elsewhere, 300).await.status, 200);
    }
    service.shutdown().await;
    drop(service);

    let restarted = start(&store, "node-1").await;
    let udp = [
        (Some(1), "udp-198.51.100.7:40001".to_owned()),
        (Some(2), "udp-198.51.100.7:40002".to_owned()),
    ];
    assert_eq!(looked_up_flows(&restarted, "alice", alices).await, udp);
    // Only the dead connection's binding was deleted.
    assert_eq!(stored_flows(&store, alice.pk, alices).await, udp);
    let bobs_flows = [(Some(1), "tcp-1".to_owned()), (Some(2), "tcp-2".to_owned())];
    assert_eq!(looked_up_flows(&restarted, "bob", bobs).await, bobs_flows);
    // The reloaded flows are the ones refreshes and CSeq checks run against.
    for flow in &mut udp_flows {
        let ok = flow.register(&restarted, 300).await;
        assert_eq!(ok.status, 200, "{}", text(&ok));
    }
    assert_eq!(looked_up_flows(&restarted, "alice", alices).await, udp);
    assert_eq!(stored_flows(&store, alice.pk, alices).await, udp);
    restarted.shutdown().await;
    elsewhere.shutdown().await;
}

#[tokio::test]
async fn database_down_answers_503_and_changes_nothing() {
    let store = fresh_store().await;
    let account = account(&store).await;
    let alice = endpoint(&store, account, "alice").await;
    let bob = endpoint(&store, account, "bob").await;
    let doomed = Store::connect(store.options()).await.unwrap();
    let service = start(&doomed, "node-1").await;
    let mut phone = Client::new(&alice, "198.51.100.7", "udp-198.51.100.7:5060");
    assert_eq!(phone.register(&service, 300).await.status, 200);
    let mut bobs_phone = Client::new(&bob, "198.51.100.9", "udp-198.51.100.9:5060");
    let challenge = bobs_phone.send(&service, 300).await;
    bobs_phone.take_challenge(&challenge);

    doomed.close().await;
    // Cached credentials, failed commit: 503, memory unchanged.
    let mut moved = phone.clone();
    moved.contact = "<sip:alice@198.51.100.70:5060>".to_owned();
    let outcome = moved.send(&service, 300).await;
    assert_eq!(outcome.status, 503, "{}", text(&outcome));
    assert!(
        text(&outcome).contains("Retry-After: 5"),
        "{}",
        text(&outcome)
    );
    assert_eq!(outcome.flow_registered, None);
    assert_eq!(
        looked_up(&service, "alice").await,
        ["sip:alice@198.51.100.7:5060;transport=udp"]
    );
    // Credentials not cached: 503 as well.
    let outcome = bobs_phone.send(&service, 300).await;
    assert_eq!(outcome.status, 503, "{}", text(&outcome));
    assert!(service.locate("bob", SystemTime::now()).await.is_err());
    service.shutdown().await;
    assert_eq!(
        stored_contacts(&store, alice.pk).await,
        ["sip:alice@198.51.100.7:5060;transport=udp"]
    );
}
