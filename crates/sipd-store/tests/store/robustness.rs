//! Backend assumptions the store relies on, odd input, and concurrent writers (several nodes).

use crate::common::{main_account, new_application, new_endpoint, WAIT};
use sipd_store::testing::{fresh_store, test_options};
use sipd_store::{EndpointFilter, NewApplication, Scope, Store, StoreError};
use sqlx::{Connection, Row};
use tokio::task::JoinSet;
use tokio::time::timeout;

#[tokio::test]
async fn both_backends_take_numbered_parameters_and_booleans() {
    let store = fresh_store().await;
    let mut raw = sqlx::AnyConnection::connect(store.url()).await.unwrap();
    // Reused and out-of-order `$N`, as the store's statements use them.
    let row = sqlx::query("SELECT $2 AS second, $1 AS first, $2 AS again")
        .bind(1_i64)
        .bind("two")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("second"), "two");
    assert_eq!(row.get::<i64, _>("first"), 1);
    assert_eq!(row.get::<String, _>("again"), "two");
    raw.close().await.unwrap();

    let (account, _) = main_account(&store, "Flags").await;
    let disabled = store
        .update_account(
            account.id,
            sipd_store::AccountPatch {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!disabled.enabled);
}

#[tokio::test]
async fn odd_input_is_stored_verbatim_and_never_interpreted() {
    let store = fresh_store().await;
    let (account, token) = main_account(&store, "Robert'); DROP TABLE accounts;--").await;
    assert_eq!(account.name, "Robert'); DROP TABLE accounts;--");
    for auth_id in ["", "' OR '1'='1", "MA_\u{1F600}", &"x".repeat(10_000)] {
        assert_eq!(store.authenticate(auth_id, &token).await.unwrap(), None);
        assert_eq!(store.account_by_auth_id(auth_id).await.unwrap(), None);
    }
    let scope = Scope::Family(account.id);
    let username = "ünïcødé'\"\\%_;--";
    let created = store
        .create_endpoint(new_endpoint(&account, username))
        .await
        .unwrap();
    assert_eq!(created.username, username);
    let filter = EndpointFilter {
        username_contains: Some("'\"\\%_".into()),
        ..EndpointFilter::default()
    };
    let (found, total) = store.list_endpoints(scope, &filter, 20, 0).await.unwrap();
    assert_eq!((found.len(), total), (1, 1));
    let filter = EndpointFilter {
        username_startswith: Some("ünï".into()),
        ..EndpointFilter::default()
    };
    assert_eq!(
        store.list_endpoints(scope, &filter, 20, 0).await.unwrap().1,
        1
    );
    assert_eq!(store.get_endpoint(scope, "1 OR 1=1").await.unwrap(), None);
    let (all, _) = store
        .list_endpoints(scope, &EndpointFilter::default(), i64::MAX, i64::MAX)
        .await
        .unwrap();
    assert!(all.is_empty());
    assert!(store.account_by_id(account.id).await.unwrap().is_some());

    // PostgreSQL cannot store U+0000 in text and SQLite can: the API must reject it; the store
    // only promises not to panic and not to blame the database's availability.
    let nul = store
        .create_endpoint(new_endpoint(&account, "nul\0byte"))
        .await;
    assert!(!matches!(nul, Err(StoreError::Unavailable(_))), "{nul:?}");
    let nul = store.authenticate("MA_\0", &token).await;
    assert!(
        matches!(nul, Ok(None) | Err(StoreError::Database(_))),
        "{nul:?}"
    );
}

#[tokio::test]
async fn unsupported_url_is_an_error_not_a_panic() {
    let connected = Store::connect(test_options("mysql://localhost/db".into())).await;
    assert!(matches!(connected, Err(StoreError::Database(_))));
    let connected = Store::connect(test_options("not a url".into())).await;
    assert!(matches!(connected, Err(StoreError::Database(_))));
}

#[tokio::test]
async fn in_memory_sqlite_keeps_one_database() {
    let store = Store::connect(test_options("sqlite::memory:".into()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let (account, token) = main_account(&store, "Ephemeral").await;
    assert!(store
        .authenticate(&account.auth_id, &token)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn concurrent_writers_on_two_stores_keep_the_invariants() {
    let store = fresh_store().await;
    let node_b = Store::connect(store.options()).await.unwrap();
    let (account, _) = main_account(&store, "Busy").await;
    let nodes = [(*store).clone(), node_b];

    // Every app claims the default flag at once: all succeed, exactly one keeps it.
    let mut tasks = JoinSet::new();
    for i in 0..8 {
        let node = nodes[i % 2].clone();
        let new = NewApplication {
            default_endpoint_app: true,
            ..new_application(&account, &format!("app{i}"))
        };
        tasks.spawn(async move { node.create_application(new).await.map(drop) });
    }
    // The same username from both nodes: exactly one wins, the others conflict.
    for i in 0..6 {
        let node = nodes[i % 2].clone();
        let new = new_endpoint(&account, "contested");
        tasks.spawn(async move { node.create_endpoint(new).await.map(drop) });
    }
    let mut conflicts = 0;
    while let Some(joined) = timeout(WAIT, tasks.join_next()).await.unwrap() {
        match joined.unwrap() {
            Ok(()) => {}
            Err(StoreError::Conflict { field: "username" }) => conflicts += 1,
            Err(err) => panic!("unexpected error: {err:?}"),
        }
    }
    assert_eq!(conflicts, 5);
    let (apps, total) = store
        .list_applications(Scope::Account(account.id), &Default::default(), 20, 0)
        .await
        .unwrap();
    assert_eq!(total, 8);
    assert_eq!(apps.iter().filter(|a| a.default_endpoint_app).count(), 1);
}
