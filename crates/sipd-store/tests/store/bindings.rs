//! Batched binding changes, the group-commit writer and the purge of expired bindings.

use crate::common::{binding, endpoint, main_account, now_ms, WAIT};
use sipd_store::testing::fresh_store;
use sipd_store::{Binding, BindingChange, Endpoint, Store, StoreError};
use std::collections::BTreeMap;
use tokio::task::JoinSet;
use tokio::time::timeout;

/// (endpoint_pk, contact) → cseq of every live binding.
async fn live(store: &Store) -> BTreeMap<(i64, String), i64> {
    store
        .live_bindings(now_ms())
        .await
        .unwrap()
        .into_iter()
        .map(|b| ((b.endpoint_pk, b.contact_uri), b.cseq))
        .collect()
}

fn with_cseq(mut binding: Binding, cseq: i64) -> Binding {
    binding.cseq = cseq;
    binding
}

fn key(endpoint: &Endpoint, contact: &str) -> (i64, String) {
    (endpoint.id, contact.to_owned())
}

#[tokio::test]
async fn batch_applies_upserts_updates_and_deletes_in_order() {
    let store = fresh_store().await;
    let (account, _) = main_account(&store, "Acme").await;
    let alice = endpoint(&store, &account, "alice").await;
    let bob = endpoint(&store, &account, "bob").await;
    let now = now_ms();
    let fresh = |ep: &Endpoint, contact: &str| binding(ep, contact, now + 60_000, now);

    store
        .apply_binding_changes(&[
            BindingChange::Upsert(fresh(&alice, "sip:a1@192.0.2.1")),
            BindingChange::Upsert(fresh(&alice, "sip:a2@192.0.2.1")),
            BindingChange::Upsert(fresh(&bob, "sip:b1@192.0.2.2")),
        ])
        .await
        .unwrap();
    assert_eq!(live(&store).await.len(), 3);

    store
        .apply_binding_changes(&[
            // Update in place.
            BindingChange::Upsert(with_cseq(fresh(&alice, "sip:a1@192.0.2.1"), 8)),
            BindingChange::Delete {
                endpoint_pk: alice.id,
                contact_uri: "sip:a2@192.0.2.1".to_owned(),
                reg_id: Some(1),
            },
            // Contact: * clears bob, then a new contact arrives in the same batch.
            BindingChange::Upsert(fresh(&bob, "sip:b2@192.0.2.2")),
            BindingChange::DeleteAllForEndpoint {
                endpoint_pk: bob.id,
            },
            BindingChange::Upsert(fresh(&bob, "sip:b3@192.0.2.2")),
            // Last word per contact wins.
            BindingChange::Upsert(with_cseq(fresh(&alice, "sip:a3@192.0.2.1"), 1)),
            BindingChange::Upsert(with_cseq(fresh(&alice, "sip:a3@192.0.2.1"), 2)),
            BindingChange::Upsert(fresh(&alice, "sip:a4@192.0.2.1")),
            BindingChange::Delete {
                endpoint_pk: alice.id,
                contact_uri: "sip:a4@192.0.2.1".to_owned(),
                reg_id: Some(1),
            },
            BindingChange::Delete {
                endpoint_pk: alice.id,
                contact_uri: "sip:a5@192.0.2.1".to_owned(),
                reg_id: Some(1),
            },
            BindingChange::Upsert(fresh(&alice, "sip:a5@192.0.2.1")),
        ])
        .await
        .unwrap();
    let expected: BTreeMap<_, _> = [
        (key(&alice, "sip:a1@192.0.2.1"), 8),
        (key(&alice, "sip:a3@192.0.2.1"), 2),
        (key(&alice, "sip:a5@192.0.2.1"), 7),
        (key(&bob, "sip:b3@192.0.2.2"), 7),
    ]
    .into_iter()
    .collect();
    assert_eq!(live(&store).await, expected);

    let alices = store
        .bindings_of_endpoint(alice.id, now_ms())
        .await
        .unwrap();
    assert_eq!(alices.len(), 3);
    assert!(alices.iter().all(|b| b.endpoint_pk == alice.id));
    assert!(store
        .bindings_of_endpoint(alice.id, now + 120_000)
        .await
        .unwrap()
        .is_empty());

    store
        .apply_binding_changes(&[BindingChange::DeleteAllForEndpoint {
            endpoint_pk: alice.id,
        }])
        .await
        .unwrap();
    assert_eq!(live(&store).await.len(), 1);
    store.apply_binding_changes(&[]).await.unwrap();
}

/// (reg-id → cseq) of the endpoint's live bindings with `contact`.
async fn flows_of(store: &Store, endpoint: &Endpoint, contact: &str) -> BTreeMap<Option<i64>, i64> {
    store
        .bindings_of_endpoint(endpoint.id, now_ms())
        .await
        .unwrap()
        .into_iter()
        .filter(|b| b.contact_uri == contact)
        .map(|b| (b.reg_id, b.cseq))
        .collect()
}

#[tokio::test]
async fn flows_with_the_same_contact_are_stored_updated_and_deleted_separately() {
    // RFC 5626 §6: one device, two flows (reg-id 1 and 2) with the same Contact URI; the same
    // URI without a reg-id is a third binding.
    const CONTACT: &str = "sip:phone@192.0.2.1;transport=tcp;ob";
    let store = fresh_store().await;
    let (account, _) = main_account(&store, "Acme").await;
    let phone = endpoint(&store, &account, "phone").await;
    let now = now_ms();
    let flow = |reg_id: Option<i64>, cseq: i64| {
        let mut flow = with_cseq(binding(&phone, CONTACT, now + 60_000, now), cseq);
        flow.reg_id = reg_id;
        flow.flow_id = Some(format!("tcp-{}", reg_id.unwrap_or_default()));
        flow
    };
    let flows =
        |entries: &[(Option<i64>, i64)]| entries.iter().copied().collect::<BTreeMap<_, _>>();
    let writer = store.binding_writer();

    // Stored side by side, in one batch or one at a time.
    store
        .apply_binding_changes(&[
            BindingChange::Upsert(flow(Some(1), 1)),
            BindingChange::Upsert(flow(Some(2), 1)),
        ])
        .await
        .unwrap();
    store.upsert_binding(&flow(None, 1)).await.unwrap();
    assert_eq!(
        flows_of(&store, &phone, CONTACT).await,
        flows(&[(None, 1), (Some(1), 1), (Some(2), 1)])
    );

    // Updating one leaves the others as they were.
    writer
        .commit(vec![BindingChange::Upsert(flow(Some(2), 5))])
        .await
        .unwrap();
    store.upsert_binding(&flow(None, 6)).await.unwrap();
    assert_eq!(
        flows_of(&store, &phone, CONTACT).await,
        flows(&[(None, 6), (Some(1), 1), (Some(2), 5)])
    );
    let stored = store.bindings_of_endpoint(phone.id, now).await.unwrap();
    assert!(
        stored.contains(&flow(Some(2), 5)),
        "every field round-trips"
    );

    // Deleting one leaves the others; `None` names only the binding without a reg-id.
    writer
        .commit(vec![BindingChange::delete(flow(Some(1), 1))])
        .await
        .unwrap();
    assert_eq!(
        flows_of(&store, &phone, CONTACT).await,
        flows(&[(None, 6), (Some(2), 5)])
    );
    store.delete_binding(phone.id, CONTACT, None).await.unwrap();
    assert_eq!(
        flows_of(&store, &phone, CONTACT).await,
        flows(&[(Some(2), 5)])
    );

    // In one batch, each key's last word wins on its own.
    store
        .apply_binding_changes(&[
            BindingChange::Upsert(flow(Some(1), 7)),
            BindingChange::Upsert(flow(Some(2), 8)),
            BindingChange::delete(flow(Some(2), 8)),
            BindingChange::Upsert(flow(None, 9)),
            BindingChange::Upsert(flow(None, 10)),
        ])
        .await
        .unwrap();
    assert_eq!(
        flows_of(&store, &phone, CONTACT).await,
        flows(&[(None, 10), (Some(1), 7)])
    );
}

#[tokio::test]
async fn large_batches_are_chunked_and_a_bad_endpoint_changes_nothing() {
    let store = fresh_store().await;
    let (account, _) = main_account(&store, "Acme").await;
    let phone = endpoint(&store, &account, "phone").await;
    let now = now_ms();
    // 1,500 rows: chunks of 512, 512, 256, 128, 64, 16, 8 and 4.
    let upserts: Vec<BindingChange> = (0..1_500)
        .map(|n| {
            BindingChange::Upsert(binding(
                &phone,
                &format!("sip:{n}@192.0.2.1"),
                now + 60_000,
                now,
            ))
        })
        .collect();
    store.apply_binding_changes(&upserts).await.unwrap();
    assert_eq!(live(&store).await.len(), 1_500);
    let deletes: Vec<BindingChange> = (0..1_100)
        .map(|n| BindingChange::Delete {
            endpoint_pk: phone.id,
            contact_uri: format!("sip:{n}@192.0.2.1"),
            reg_id: Some(1),
        })
        .collect();
    store.apply_binding_changes(&deletes).await.unwrap();
    assert_eq!(live(&store).await.len(), 400);

    let mut ghost = binding(&phone, "sip:ghost@192.0.2.9", now + 60_000, now);
    ghost.endpoint_pk = phone.id + 1_000_000;
    let failed = store
        .apply_binding_changes(&[
            BindingChange::DeleteAllForEndpoint {
                endpoint_pk: phone.id,
            },
            BindingChange::Upsert(ghost),
        ])
        .await;
    assert!(
        matches!(failed, Err(StoreError::InvalidReference("endpoint"))),
        "{failed:?}"
    );
    assert_eq!(
        live(&store).await.len(),
        400,
        "one transaction: nothing applied"
    );
}

#[tokio::test]
async fn purge_deletes_expired_bindings_only() {
    let store = fresh_store().await;
    let (account, _) = main_account(&store, "Acme").await;
    let phone = endpoint(&store, &account, "phone").await;
    let now = now_ms();
    // More than one purge statement's worth of expired rows.
    let mut changes: Vec<BindingChange> = (0..12_000)
        .map(|n| {
            BindingChange::Upsert(binding(
                &phone,
                &format!("sip:old{n}@192.0.2.1"),
                now - 1 - n,
                now - 120_000,
            ))
        })
        .collect();
    changes.push(BindingChange::Upsert(binding(
        &phone,
        "sip:exactly-now@192.0.2.1",
        now,
        now,
    )));
    changes.push(BindingChange::Upsert(binding(
        &phone,
        "sip:live@192.0.2.1",
        now + 60_000,
        now,
    )));
    store.apply_binding_changes(&changes).await.unwrap();

    assert_eq!(store.purge_expired_bindings(now).await.unwrap(), 12_001);
    assert_eq!(store.purge_expired_bindings(now).await.unwrap(), 0);
    let left = store.bindings_of_endpoint(phone.id, now).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].contact_uri, "sip:live@192.0.2.1");
}

#[tokio::test]
async fn group_commit_acks_only_committed_changes_under_concurrency() {
    const TASKS: usize = 100;
    const COMMITS_PER_TASK: usize = 10;
    let store = fresh_store().await;
    // Another "node" on the same database: what it reads is what was committed.
    let observer = Store::connect(store.options()).await.unwrap();
    let (account, _) = main_account(&store, "Acme").await;
    let mut endpoints = Vec::new();
    for n in 0..10 {
        endpoints.push(endpoint(&store, &account, &format!("user{n}")).await);
    }
    let writer = store.binding_writer();
    let mut tasks = JoinSet::new();
    for task in 0..TASKS {
        let writer = writer.clone();
        let observer = observer.clone();
        let phone = endpoints[task % endpoints.len()].clone();
        tasks.spawn(async move {
            for n in 0..COMMITS_PER_TASK {
                let now = now_ms();
                let contact = format!("sip:t{task}n{n}@192.0.2.1");
                let change = BindingChange::Upsert(binding(&phone, &contact, now + 60_000, now));
                writer.commit(vec![change]).await.unwrap();
                let visible = observer.bindings_of_endpoint(phone.id, now).await.unwrap();
                assert!(
                    visible.iter().any(|b| b.contact_uri == contact),
                    "acknowledged before it was committed: {contact}"
                );
            }
        });
    }
    while let Some(joined) = timeout(WAIT * 3, tasks.join_next()).await.unwrap() {
        joined.unwrap();
    }
    assert_eq!(live(&observer).await.len(), TASKS * COMMITS_PER_TASK);
}

// The default current-thread runtime: `join!` submits every request before the writer task
// runs, so they share one batch.
#[tokio::test]
async fn a_bad_change_fails_only_its_own_request() {
    let store = fresh_store().await;
    let (account, _) = main_account(&store, "Acme").await;
    let phone = endpoint(&store, &account, "phone").await;
    let now = now_ms();
    let upsert = |contact: &str, cseq: i64| {
        BindingChange::Upsert(with_cseq(binding(&phone, contact, now + 60_000, now), cseq))
    };
    let mut ghost = binding(&phone, "sip:ghost@192.0.2.9", now + 60_000, now);
    ghost.endpoint_pk = phone.id + 1_000_000;
    let writer = store.binding_writer();

    let (first, bad, second, same_contact_again, deleted_in_same_request) = timeout(WAIT, async {
        tokio::join!(
            writer.commit(vec![upsert("sip:1@192.0.2.1", 1)]),
            writer.commit(vec![
                upsert("sip:bad-batch@192.0.2.1", 1),
                BindingChange::Upsert(ghost)
            ]),
            writer.commit(vec![
                upsert("sip:1@192.0.2.1", 2),
                upsert("sip:2@192.0.2.1", 1)
            ]),
            writer.commit(vec![upsert("sip:1@192.0.2.1", 3)]),
            writer.commit(vec![
                upsert("sip:3@192.0.2.1", 1),
                BindingChange::Delete {
                    endpoint_pk: phone.id,
                    contact_uri: "sip:3@192.0.2.1".to_owned(),
                    reg_id: Some(1),
                },
            ]),
        )
    })
    .await
    .unwrap();
    first.unwrap();
    assert!(
        matches!(bad, Err(StoreError::InvalidReference("endpoint"))),
        "{bad:?}"
    );
    second.unwrap();
    same_contact_again.unwrap();
    deleted_in_same_request.unwrap();
    let expected: BTreeMap<_, _> = [
        (key(&phone, "sip:1@192.0.2.1"), 3),
        (key(&phone, "sip:2@192.0.2.1"), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        live(&store).await,
        expected,
        "the bad request changed nothing, the others in order"
    );

    // The writer keeps working after a failure, and an empty request needs no transaction.
    writer.commit(vec![]).await.unwrap();
    writer
        .commit(vec![BindingChange::DeleteAllForEndpoint {
            endpoint_pk: phone.id,
        }])
        .await
        .unwrap();
    assert!(live(&store).await.is_empty());
}

#[tokio::test]
async fn writer_reports_an_unreachable_database() {
    let store = fresh_store().await;
    let (account, _) = main_account(&store, "Acme").await;
    let phone = endpoint(&store, &account, "phone").await;
    let writer = store.binding_writer();
    store.close().await;
    let now = now_ms();
    let change = BindingChange::Upsert(binding(&phone, "sip:1@192.0.2.1", now + 60_000, now));
    let failed = timeout(WAIT, writer.commit(vec![change])).await.unwrap();
    assert!(
        matches!(failed, Err(StoreError::Unavailable(_))),
        "{failed:?}"
    );
}

#[tokio::test]
async fn authenticated_upsert_requires_the_current_credentials() {
    let store = fresh_store().await;
    let (account, _) = main_account(&store, "Acme").await;
    let phone = endpoint(&store, &account, "phone").await;
    let authenticated_at = store
        .credentials_by_username("phone")
        .await
        .unwrap()
        .unwrap()
        .credentials_changed_at
        .timestamp_millis();
    let now = now_ms();
    let upsert =
        |contact: &str, credentials_changed_at_ms: i64| BindingChange::UpsertAuthenticated {
            binding: binding(&phone, contact, now + 60_000, now),
            credentials_changed_at_ms,
        };
    let writer = store.binding_writer();
    writer
        .commit(vec![upsert("sip:1@192.0.2.1", authenticated_at)])
        .await
        .unwrap();

    // The password changes between the digest check and the commit.
    store
        .update_endpoint(
            sipd_store::Scope::Account(account.id),
            &phone.endpoint_id,
            sipd_store::EndpointPatch {
                password: Some("changed".to_owned()),
                ..sipd_store::EndpointPatch::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    let stale = writer
        .commit(vec![upsert("sip:2@192.0.2.1", authenticated_at)])
        .await;
    assert!(
        matches!(stale, Err(StoreError::InvalidReference("credentials"))),
        "{stale:?}"
    );
    assert!(
        live(&store).await.is_empty(),
        "the password change removed sip:1"
    );
    // Even when a later change in the same list overrides the stale one.
    let overridden = store
        .apply_binding_changes(&[
            upsert("sip:2@192.0.2.1", authenticated_at),
            BindingChange::Upsert(binding(&phone, "sip:2@192.0.2.1", now + 60_000, now)),
        ])
        .await;
    assert!(
        matches!(overridden, Err(StoreError::InvalidReference("credentials"))),
        "{overridden:?}"
    );

    let reauthenticated = store
        .credentials_by_username("phone")
        .await
        .unwrap()
        .unwrap()
        .credentials_changed_at
        .timestamp_millis();
    writer
        .commit(vec![upsert("sip:2@192.0.2.1", reauthenticated)])
        .await
        .unwrap();
    assert_eq!(live(&store).await.len(), 1);

    let mut ghost = binding(&phone, "sip:ghost@192.0.2.9", now + 60_000, now);
    ghost.endpoint_pk = phone.id + 1_000_000;
    let unknown = writer
        .commit(vec![BindingChange::UpsertAuthenticated {
            binding: ghost,
            credentials_changed_at_ms: reauthenticated,
        }])
        .await;
    assert!(
        matches!(unknown, Err(StoreError::InvalidReference("endpoint"))),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn one_endpoints_changes_commit_in_submission_order() {
    let store = fresh_store().await;
    let (account, _) = main_account(&store, "Acme").await;
    let phone = endpoint(&store, &account, "phone").await;
    let other = endpoint(&store, &account, "other").await;
    let now = now_ms();
    // One change per transaction, so the requests spread over many transactions, some of them
    // in flight together (PostgreSQL) when they touch different endpoints.
    let writer = store.binding_writer_with_batch(1);
    let commits = (1..=40).map(|cseq| {
        let target = if cseq % 2 == 0 { &phone } else { &other };
        let change = BindingChange::Upsert(with_cseq(
            binding(target, "sip:same@192.0.2.1", now + 60_000, now),
            cseq,
        ));
        writer.commit(vec![change])
    });
    let outcomes = timeout(WAIT, futures_util::future::join_all(commits))
        .await
        .unwrap();
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let expected: BTreeMap<_, _> = [
        (key(&phone, "sip:same@192.0.2.1"), 40),
        (key(&other, "sip:same@192.0.2.1"), 39),
    ]
    .into_iter()
    .collect();
    assert_eq!(live(&store).await, expected);
}
