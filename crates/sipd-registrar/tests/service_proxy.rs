//! What the proxy asks of the registrar service, over a real store (SQLite by default,
//! PostgreSQL with `SIPD_TEST_DATABASE_URL`): callers authenticated by `Proxy-Authorization`,
//! callees located with their endpoint facts, and AORs named by an alias or the address a
//! REGISTER arrived on.

mod service_support;

use std::time::SystemTime;

use service_support::*;
use sip_message::Message;
use sipd_registrar::service::{RegistrarService, ServiceConfig};
use sipd_registrar::{EndpointInfo, Permission, Permissions, Response};
use sipd_store::testing::fresh_store;
use sipd_store::{EndpointPatch, NewAccount, NewEndpoint, Scope, Store};

fn status_line(response: &Response) -> String {
    let text = String::from_utf8_lossy(&response.bytes);
    text.lines().next().unwrap_or_default().to_owned()
}

fn stale(response: &Response) -> bool {
    String::from_utf8_lossy(&response.bytes).contains("stale=true")
}

/// Sends `method` from `phone` as the proxy would authenticate it; on a 407 takes the nonce
/// and answers it once.
async fn authenticated(
    phone: &mut Client,
    service: &RegistrarService,
    method: &str,
) -> Result<EndpointInfo, Response> {
    let first = phone.proxied(method, "bob");
    match service.authenticate(&first, SystemTime::now()).await {
        Err(challenge) if challenge.status == 407 => {
            phone.take_nonce(&challenge.bytes);
            let answered = phone.proxied(method, "bob");
            service.authenticate(&answered, SystemTime::now()).await
        }
        other => other,
    }
}

async fn sub_account(store: &Store, parent_id: i64) -> i64 {
    let (account, _token) = store
        .create_account(NewAccount {
            name: "branch".to_owned(),
            parent_id: Some(parent_id),
            ..NewAccount::default()
        })
        .await
        .expect("create sub-account");
    account.id
}

#[tokio::test]
async fn authenticate_challenges_then_names_the_endpoint_with_its_facts() {
    let store = fresh_store().await;
    let main = account(&store).await;
    let branch = sub_account(&store, main).await;
    let alice = endpoint(&store, main, "alice").await;
    let app = store
        .create_application(sipd_store::NewApplication {
            account_id: branch,
            app_name: "ivr".to_owned(),
            answer_url: "https://example.com/answer".to_owned(),
            answer_method: "POST".to_owned(),
            hangup_url: None,
            hangup_method: "POST".to_owned(),
            fallback_answer_url: None,
            fallback_method: "POST".to_owned(),
            message_url: None,
            message_method: "POST".to_owned(),
            default_number_app: false,
            default_endpoint_app: false,
            application_type: "XML".to_owned(),
            default_app: false,
            enabled: true,
            log_incoming_message: true,
            public_uri: false,
            sip_transfer_url: None,
            sip_transfer_method: "POST".to_owned(),
        })
        .await
        .expect("create application");
    let carol = store
        .create_endpoint(NewEndpoint {
            account_id: branch,
            username: "carol".to_owned(),
            password: "carol-secret".to_owned(),
            alias: "carol".to_owned(),
            application_id: Some(app.id),
            allow_voice: true,
            allow_message: false,
            allow_video: false,
            allow_same_domain: true,
            allow_other_domains: false,
            allow_phones: true,
            allow_apps: false,
        })
        .await
        .expect("create endpoint");
    let service = start(&store, "node-1").await;

    let mut alices_phone = Client::new(&alice, "198.51.100.7", "udp-198.51.100.7:5060");
    let challenge = service
        .authenticate(&alices_phone.proxied("INVITE", "bob"), SystemTime::now())
        .await
        .unwrap_err();
    assert_eq!(
        status_line(&challenge),
        "SIP/2.0 407 Proxy Authentication Required"
    );
    assert!(String::from_utf8_lossy(&challenge.bytes).contains("Proxy-Authenticate: Digest"));
    alices_phone.take_nonce(&challenge.bytes);
    let caller = service
        .authenticate(&alices_phone.proxied("INVITE", "bob"), SystemTime::now())
        .await
        .expect("authenticated");
    let everything: Permissions = Permission::ALL.into_iter().collect();
    assert_eq!(
        caller,
        EndpointInfo {
            endpoint_pk: alice.pk,
            username: "alice".into(),
            account_id: main,
            family_id: main,
            application_id: None,
            permissions: everything,
        }
    );

    let mut carols_phone = Client::new(
        &Endpoint {
            pk: carol.id,
            endpoint_id: carol.endpoint_id.clone(),
            account_id: branch,
            username: "carol".to_owned(),
            password: "carol-secret".to_owned(),
        },
        "198.51.100.8",
        "tcp-4",
    );
    let caller = authenticated(&mut carols_phone, &service, "MESSAGE")
        .await
        .expect("authenticated");
    assert_eq!((caller.account_id, caller.family_id), (branch, main));
    assert_eq!(caller.application_id, Some(app.id));
    let granted: Permissions = [
        Permission::Voice,
        Permission::SameDomain,
        Permission::Phones,
    ]
    .into_iter()
    .collect();
    assert_eq!(caller.permissions, granted);
    service.shutdown().await;
}

#[tokio::test]
async fn a_nonce_serves_registers_and_other_requests_with_rising_counts() {
    let store = fresh_store().await;
    let account = account(&store).await;
    let alice = endpoint(&store, account, "alice").await;
    let service = start(&store, "node-1").await;
    let mut phone = Client::new(&alice, "198.51.100.7", "udp-198.51.100.7:5060");
    assert_eq!(phone.register(&service, 300).await.status, 200);
    // The REGISTER's nonce, next count: accepted for an INVITE.
    let invite = phone.proxied("INVITE", "bob");
    let caller = service.authenticate(&invite, SystemTime::now()).await;
    assert_eq!(caller.map(|c| c.endpoint_pk), Ok(alice.pk));
    // The same INVITE again (a replay): stale.
    let replayed = service
        .authenticate(&invite, SystemTime::now())
        .await
        .unwrap_err();
    assert_eq!(replayed.status, 407);
    assert!(stale(&replayed));
    // A REGISTER reusing a count the INVITE spent: stale too.
    phone.nc -= 1;
    let outcome = phone.send(&service, 300).await;
    assert_eq!(outcome.status, 401, "{}", text(&outcome));
    assert!(text(&outcome).contains("stale=true"));
    service.shutdown().await;
}

#[tokio::test]
async fn wrong_passwords_unknown_users_and_malformed_answers() {
    let store = fresh_store().await;
    let account = account(&store).await;
    let mut alice = endpoint(&store, account, "alice").await;
    let service = start(&store, "node-1").await;
    alice.password = "not-the-password".to_owned();
    let mut wrong = Client::new(&alice, "198.51.100.7", "udp-198.51.100.7:5060");
    let refused = authenticated(&mut wrong, &service, "INVITE")
        .await
        .unwrap_err();
    assert_eq!(refused.status, 407);
    assert!(!stale(&refused));

    let mut nobody = Client::new(
        &Endpoint {
            username: "nobody".to_owned(),
            ..alice
        },
        "198.51.100.8",
        "udp-198.51.100.8:5060",
    );
    let refused = authenticated(&mut nobody, &service, "INVITE")
        .await
        .unwrap_err();
    assert_eq!(refused.status, 407);
    assert!(!stale(&refused));

    let text = String::from_utf8(nobody.proxied("INVITE", "bob").as_bytes().to_vec())
        .unwrap()
        .replace("algorithm=MD5", "algorithm=MD5, username=\"twice\"");
    let malformed = Message::parse_slice(text.as_bytes()).unwrap();
    let refused = service
        .authenticate(&malformed, SystemTime::now())
        .await
        .unwrap_err();
    assert_eq!(
        status_line(&refused),
        "SIP/2.0 400 Malformed Proxy-Authorization"
    );
    service.shutdown().await;
}

#[tokio::test]
async fn locate_gives_the_endpoint_and_its_live_bindings() {
    let store = fresh_store().await;
    let account = account(&store).await;
    let alice = endpoint(&store, account, "alice").await;
    let service = start(&store, "node-1").await;
    assert!(matches!(
        service.locate("nobody", SystemTime::now()).await,
        Ok(None)
    ));
    let unregistered = service
        .locate("alice", SystemTime::now())
        .await
        .unwrap()
        .expect("alice exists");
    assert_eq!(unregistered.endpoint.endpoint_pk, alice.pk);
    assert_eq!(unregistered.endpoint.family_id, account);
    assert!(unregistered.bindings.is_empty());

    let mut phone = Client::new(&alice, "198.51.100.7", "tls-3");
    assert_eq!(phone.register(&service, 300).await.status, 200);
    let located = service
        .locate("alice", SystemTime::now())
        .await
        .unwrap()
        .expect("alice exists");
    assert_eq!(located.endpoint, unregistered.endpoint);
    assert_eq!(located.bindings.len(), 1);
    assert_eq!(located.bindings[0].flow_id.as_deref(), Some("tls-3"));
    service.shutdown().await;
}

/// Waits until `service` locates `username` with facts that satisfy `check`.
async fn wait_for_facts(
    service: &RegistrarService,
    username: &str,
    what: &str,
    check: impl Fn(&EndpointInfo) -> bool,
) {
    wait_until(service, what, || async {
        service
            .locate(username, SystemTime::now())
            .await
            .ok()
            .flatten()
            .is_some_and(|located| check(&located.endpoint))
    })
    .await;
}

#[tokio::test]
async fn permission_and_application_changes_reach_the_cache() {
    let store = fresh_store().await;
    let account = account(&store).await;
    let alice = endpoint(&store, account, "alice").await;
    let app = store
        .create_application(sipd_store::NewApplication {
            account_id: account,
            app_name: "ivr".to_owned(),
            answer_url: "https://example.com/answer".to_owned(),
            answer_method: "POST".to_owned(),
            hangup_url: None,
            hangup_method: "POST".to_owned(),
            fallback_answer_url: None,
            fallback_method: "POST".to_owned(),
            message_url: None,
            message_method: "POST".to_owned(),
            default_number_app: false,
            default_endpoint_app: false,
            application_type: "XML".to_owned(),
            default_app: false,
            enabled: true,
            log_incoming_message: true,
            public_uri: false,
            sip_transfer_url: None,
            sip_transfer_method: "POST".to_owned(),
        })
        .await
        .expect("create application");
    let service = start(&store, "node-1").await;
    // On PostgreSQL, a second node learns the changes through the database.
    let second_store = Store::connect(store.options()).await.unwrap();
    let second = match store.is_postgres() {
        true => Some(start(&second_store, "node-2").await),
        false => None,
    };
    let nodes: Vec<&RegistrarService> = [Some(&service), second.as_ref()]
        .into_iter()
        .flatten()
        .collect();
    let mut phone = Client::new(&alice, "198.51.100.7", "udp-198.51.100.7:5060");
    assert_eq!(phone.register(&service, 300).await.status, 200);
    for node in &nodes {
        // Cached now.
        let located = node.locate("alice", SystemTime::now()).await.unwrap();
        let facts = located.expect("alice exists").endpoint;
        assert!(facts.permissions.allows(Permission::Voice));
        assert_eq!(facts.application_id, None);
    }

    store
        .update_endpoint(
            Scope::Account(account),
            &alice.endpoint_id,
            EndpointPatch {
                allow_voice: Some(false),
                application_id: Some(Some(app.id)),
                ..EndpointPatch::default()
            },
        )
        .await
        .unwrap()
        .expect("alice exists");
    for node in &nodes {
        wait_for_facts(node, "alice", "the change reaches the cache", |facts| {
            !facts.permissions.allows(Permission::Voice) && facts.application_id == Some(app.id)
        })
        .await;
    }
    // The caller's facts are the new ones too, and the bindings stayed.
    let caller = authenticated(&mut phone, &service, "MESSAGE")
        .await
        .expect("authenticated");
    assert!(!caller.permissions.allows(Permission::Voice));
    assert!(caller.permissions.allows(Permission::Message));
    assert_eq!(
        live_bindings(&service, "alice", SystemTime::now())
            .await
            .len(),
        1
    );

    // Deleting the application unbinds the endpoint, in the cache as well.
    assert!(store
        .delete_application(Scope::Account(account), &app.app_id)
        .await
        .unwrap());
    for node in &nodes {
        wait_for_facts(node, "alice", "the unbinding reaches the cache", |facts| {
            facts.application_id.is_none()
        })
        .await;
    }
    if let Some(second) = &second {
        second.shutdown().await;
    }
    service.shutdown().await;
}

#[tokio::test]
async fn database_down_answers_503_to_authenticate() {
    let store = fresh_store().await;
    let account = account(&store).await;
    let alice = endpoint(&store, account, "alice").await;
    let bob = endpoint(&store, account, "bob").await;
    let doomed = Store::connect(store.options()).await.unwrap();
    let service = start(&doomed, "node-1").await;
    let mut alices_phone = Client::new(&alice, "198.51.100.7", "udp-198.51.100.7:5060");
    assert!(authenticated(&mut alices_phone, &service, "INVITE")
        .await
        .is_ok());
    let mut bobs_phone = Client::new(&bob, "198.51.100.9", "udp-198.51.100.9:5060");
    let challenge = service
        .authenticate(&bobs_phone.proxied("INVITE", "alice"), SystemTime::now())
        .await
        .unwrap_err();
    bobs_phone.take_nonce(&challenge.bytes);

    doomed.close().await;
    // Cached credentials need no database.
    let caller = service
        .authenticate(&alices_phone.proxied("INVITE", "bob"), SystemTime::now())
        .await;
    assert_eq!(caller.map(|c| c.endpoint_pk), Ok(alice.pk));
    // Uncached ones do: 503 with Retry-After.
    let refused = service
        .authenticate(&bobs_phone.proxied("INVITE", "alice"), SystemTime::now())
        .await
        .unwrap_err();
    assert_eq!(status_line(&refused), "SIP/2.0 503 Service Unavailable");
    assert!(String::from_utf8_lossy(&refused.bytes).contains("Retry-After: 5"));
    service.shutdown().await;
}

#[tokio::test]
async fn an_aor_may_name_an_alias_or_the_address_the_register_arrived_on() {
    let store = fresh_store().await;
    let account = account(&store).await;
    let alice = endpoint(&store, account, "alice").await;
    let mut config: ServiceConfig = config("node-1");
    config.registrar.aliases = vec!["sip.example.net".to_owned(), "[2001:db8::5]".to_owned()];
    let service = RegistrarService::start(store.clone(), config)
        .await
        .expect("service starts");
    let arrival = LOCAL.split(':').next().unwrap().to_owned();
    for (host, flow) in [
        ("SIP.Example.Net", "udp-198.51.100.7:5060"),
        ("[2001:db8:0::5]", "udp-198.51.100.8:5060"),
        (arrival.as_str(), "udp-198.51.100.9:5060"),
    ] {
        let mut phone = Client::new(&alice, &flow[4..flow.len() - 5], flow);
        phone.aor_host = host.to_owned();
        let ok = phone.register(&service, 300).await;
        assert_eq!(ok.status, 200, "{host}: {}", text(&ok));
    }
    // All three are alice's bindings, in memory and in the database.
    assert_eq!(
        live_bindings(&service, "alice", SystemTime::now())
            .await
            .len(),
        3
    );
    let stored = store
        .bindings_of_endpoint(alice.pk, now_ms())
        .await
        .unwrap();
    assert_eq!(stored.len(), 3);

    for host in ["192.0.2.77", "example.org", "[2001:db8::6]"] {
        let mut phone = Client::new(&alice, "198.51.100.10", "udp-198.51.100.10:5060");
        phone.aor_host = host.to_owned();
        let refused = phone.send(&service, 300).await;
        assert_eq!(refused.status, 403, "{host}: {}", text(&refused));
    }
    service.shutdown().await;
}
