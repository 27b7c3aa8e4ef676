//! Endpoint change notifications: this node's subscribers, and on PostgreSQL other nodes'.

use crate::common::{
    application, binding, endpoint, main_account, new_endpoint, now_ms, sub_account, WAIT,
};
use sipd_store::testing::fresh_store;
use sipd_store::{
    Endpoint, EndpointChange, EndpointChangeKind, EndpointChanges, EndpointEvent, EndpointPatch,
    NewEndpoint, Scope, Store,
};
use sqlx::Connection;
use tokio::time::timeout;

async fn next_event(changes: &mut EndpointChanges) -> EndpointEvent {
    timeout(WAIT, changes.recv())
        .await
        .expect("an event in time")
        .expect("subscription open")
}

fn changed(endpoint: &Endpoint, kind: EndpointChangeKind) -> EndpointEvent {
    EndpointEvent::Changed(EndpointChange {
        endpoint_pk: endpoint.id,
        username: endpoint.username.clone(),
        kind,
    })
}

async fn change_password(store: &Store, endpoint: &Endpoint, password: &str) {
    store
        .update_endpoint(
            Scope::Account(endpoint.account_id),
            &endpoint.endpoint_id,
            EndpointPatch {
                password: Some(password.to_owned()),
                ..EndpointPatch::default()
            },
        )
        .await
        .unwrap()
        .expect("endpoint exists");
}

/// An alias change: an `Updated` event that marks "everything before has been delivered".
async fn touch(store: &Store, endpoint: &Endpoint) {
    store
        .update_endpoint(
            Scope::Account(endpoint.account_id),
            &endpoint.endpoint_id,
            EndpointPatch {
                alias: Some("marker".to_owned()),
                ..EndpointPatch::default()
            },
        )
        .await
        .unwrap()
        .expect("endpoint exists");
}

#[tokio::test]
async fn password_change_and_delete_each_yield_one_event() {
    let store = fresh_store().await;
    let (account, _) = main_account(&store, "Acme").await;
    let phone = endpoint(&store, &account, "phone").await;
    let marker = endpoint(&store, &account, "marker").await;
    let now = now_ms();
    store
        .upsert_binding(&binding(&phone, "sip:p@192.0.2.1", now + 60_000, now))
        .await
        .unwrap();
    let mut changes = store.subscribe_endpoint_changes().await;

    change_password(&store, &phone, "new secret").await;
    assert_eq!(
        next_event(&mut changes).await,
        changed(&phone, EndpointChangeKind::CredentialsChanged)
    );
    assert!(store
        .bindings_of_endpoint(phone.id, now)
        .await
        .unwrap()
        .is_empty());

    assert!(store
        .delete_endpoint(Scope::Account(account.id), &phone.endpoint_id)
        .await
        .unwrap());
    assert_eq!(
        next_event(&mut changes).await,
        changed(&phone, EndpointChangeKind::Deleted)
    );
    // Deleting what is gone changes nothing and says nothing.
    assert!(!store
        .delete_endpoint(Scope::Account(account.id), &phone.endpoint_id)
        .await
        .unwrap());

    // No duplicate (PostgreSQL: the NOTIFY of our own change is not delivered again).
    touch(&store, &marker).await;
    assert_eq!(
        next_event(&mut changes).await,
        changed(&marker, EndpointChangeKind::Updated)
    );
}

#[tokio::test]
async fn sub_account_deletion_reports_each_endpoint() {
    let store = fresh_store().await;
    let (parent, _) = main_account(&store, "Parent").await;
    let (doomed, _) = sub_account(&store, &parent, "Doomed").await;
    let (moving, _) = sub_account(&store, &parent, "Moving").await;
    let gone = [
        endpoint(&store, &doomed, "gone1").await,
        endpoint(&store, &doomed, "gone2").await,
    ];
    let moved = endpoint(&store, &moving, "moved").await;
    // The parent's endpoint uses the doomed sub-account's application, which goes with it.
    let doomed_app = application(&store, &doomed, "doomed app").await;
    let unbound = store
        .create_endpoint(NewEndpoint {
            application_id: Some(doomed_app.id),
            ..new_endpoint(&parent, "unbound")
        })
        .await
        .unwrap();
    let mut changes = store.subscribe_endpoint_changes().await;

    assert!(store.delete_sub_account(doomed.id, true).await.unwrap());
    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(next_event(&mut changes).await);
    }
    events.sort_by_key(|event| format!("{event:?}"));
    let mut expected: Vec<_> = gone
        .iter()
        .map(|ep| changed(ep, EndpointChangeKind::Deleted))
        .chain([changed(&unbound, EndpointChangeKind::Updated)])
        .collect();
    expected.sort_by_key(|event| format!("{event:?}"));
    assert_eq!(events, expected);
    let credentials = store
        .credentials_by_username("unbound")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credentials.application_id, None);

    assert!(store.delete_sub_account(moving.id, false).await.unwrap());
    assert_eq!(
        next_event(&mut changes).await,
        changed(&moved, EndpointChangeKind::Updated)
    );
}

#[tokio::test]
async fn application_deletion_reports_each_endpoint_bound_to_it() {
    let store = fresh_store().await;
    let (account, _) = main_account(&store, "Acme").await;
    let app = application(&store, &account, "ivr").await;
    let kept_app = application(&store, &account, "kept").await;
    let bound = store
        .create_endpoint(NewEndpoint {
            application_id: Some(app.id),
            ..new_endpoint(&account, "bound")
        })
        .await
        .unwrap();
    let elsewhere = store
        .create_endpoint(NewEndpoint {
            application_id: Some(kept_app.id),
            ..new_endpoint(&account, "elsewhere")
        })
        .await
        .unwrap();
    let marker = endpoint(&store, &account, "marker").await;
    let mut changes = store.subscribe_endpoint_changes().await;

    assert!(store
        .delete_application(Scope::Account(account.id), &app.app_id)
        .await
        .unwrap());
    assert_eq!(
        next_event(&mut changes).await,
        changed(&bound, EndpointChangeKind::Updated)
    );
    let application_of = |username: &'static str| {
        let store = &store;
        async move {
            store
                .credentials_by_username(username)
                .await
                .unwrap()
                .unwrap()
                .application_id
        }
    };
    assert_eq!(application_of("bound").await, None);
    assert_eq!(application_of("elsewhere").await, Some(kept_app.id));
    // Gone already: nothing deleted, nothing said; the endpoint bound elsewhere heard nothing.
    assert!(!store
        .delete_application(Scope::Account(account.id), &app.app_id)
        .await
        .unwrap());
    touch(&store, &marker).await;
    assert_eq!(
        next_event(&mut changes).await,
        changed(&marker, EndpointChangeKind::Updated)
    );
    drop(elsewhere);
}

#[tokio::test]
async fn other_nodes_learn_changes_through_postgres() {
    let store = fresh_store().await;
    if !store.is_postgres() {
        return; // SQLite is one node: its subscribers are covered above.
    }
    let other_node = Store::connect(store.options()).await.unwrap();
    let (account, _) = main_account(&store, "Acme").await;
    let phone = endpoint(&store, &account, "phone").await;
    let marker = endpoint(&store, &account, "marker").await;
    let mut local = store.subscribe_endpoint_changes().await;
    let mut remote = other_node.subscribe_endpoint_changes().await;

    change_password(&store, &phone, "new secret").await;
    assert!(store
        .delete_endpoint(Scope::Account(account.id), &phone.endpoint_id)
        .await
        .unwrap());
    touch(&store, &marker).await;
    for changes in [&mut local, &mut remote] {
        assert_eq!(
            next_event(changes).await,
            changed(&phone, EndpointChangeKind::CredentialsChanged)
        );
        assert_eq!(
            next_event(changes).await,
            changed(&phone, EndpointChangeKind::Deleted)
        );
        assert_eq!(
            next_event(changes).await,
            changed(&marker, EndpointChangeKind::Updated)
        );
    }

    // And the other way round.
    touch(&other_node, &marker).await;
    assert_eq!(
        next_event(&mut local).await,
        changed(&marker, EndpointChangeKind::Updated)
    );
    assert_eq!(
        next_event(&mut remote).await,
        changed(&marker, EndpointChangeKind::Updated)
    );
}

#[tokio::test]
async fn a_lost_listener_connection_means_resync_then_events_again() {
    let store = fresh_store().await;
    if !store.is_postgres() {
        return; // SQLite has no listener to lose.
    }
    let other_node = Store::connect(store.options()).await.unwrap();
    let (account, _) = main_account(&store, "Acme").await;
    let phone = endpoint(&store, &account, "phone").await;
    let mut remote = other_node.subscribe_endpoint_changes().await;

    let mut admin = sqlx::AnyConnection::connect(store.url()).await.unwrap();
    let killed = sqlx::query(
        "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed.len(), 1, "exactly the listener's connection");
    assert_eq!(next_event(&mut remote).await, EndpointEvent::Resync);

    // Listening again: a change after the resync arrives. It may race the reconnect, so the
    // subscription waits until listening (a new subscriber does) before changing.
    let mut after = other_node.subscribe_endpoint_changes().await;
    change_password(&store, &phone, "after reconnect").await;
    assert_eq!(
        next_event(&mut after).await,
        changed(&phone, EndpointChangeKind::CredentialsChanged)
    );
}
