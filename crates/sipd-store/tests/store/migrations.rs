//! Upgrades of databases an earlier release created: a new migration keeps the rows there.

use crate::common::{binding, endpoint, main_account, now_ms};
use sipd_store::testing::{fresh_unmigrated_store, TestStore};
use sipd_store::{Binding, BindingChange};
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, Connection};
use std::path::Path;

/// The initial schema, as the first release shipped it.
const INITIAL: i64 = 20261126000001;

/// Applies this backend's migrations up to `last_version` only, as the release that shipped
/// `last_version` did.
async fn migrate_up_to(store: &TestStore, last_version: i64) {
    let backend = if store.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    let all = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../migrations")
        .join(backend);
    let released = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&all).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let version: i64 = name.split('_').next().unwrap().parse().unwrap();
        if version <= last_version {
            std::fs::copy(&path, released.path().join(&name)).unwrap();
        }
    }
    let migrator = Migrator::new(released.path()).await.unwrap();
    let mut raw = AnyConnection::connect(store.url()).await.unwrap();
    migrator.run(&mut raw).await.unwrap();
    raw.close().await.unwrap();
}

/// Inserts `binding` as a plain row, whatever the table's keys (an older release's write).
async fn insert_row(raw: &mut AnyConnection, binding: &Binding) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO registrations (endpoint_pk, contact_uri, expires_at, q, call_id, cseq, \
         user_agent, received, transport, flow_id, instance_id, reg_id, path, node_id, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(binding.endpoint_pk)
    .bind(binding.contact_uri.as_str())
    .bind(binding.expires_at_ms)
    .bind(binding.q)
    .bind(binding.call_id.as_str())
    .bind(binding.cseq)
    .bind(binding.user_agent.as_deref())
    .bind(binding.received.as_str())
    .bind(binding.transport.as_str())
    .bind(binding.flow_id.as_deref())
    .bind(binding.instance_id.as_deref())
    .bind(binding.reg_id)
    .bind(binding.path.as_deref())
    .bind(binding.node_id.as_str())
    .bind(binding.updated_at_ms)
    .execute(raw)
    .await
    .map(|_| ())
}

#[tokio::test]
async fn keying_bindings_by_reg_id_keeps_the_stored_bindings() {
    let store = fresh_unmigrated_store().await;
    migrate_up_to(&store, INITIAL).await;
    let (account, _) = main_account(&store, "Acme").await;
    let phone = endpoint(&store, &account, "phone").await;
    let now = now_ms();
    let flow = binding(&phone, "sip:phone@192.0.2.1;ob", now + 60_000, now);
    let mut plain = binding(&phone, "sip:phone@192.0.2.2", now + 90_000, now - 1);
    plain.instance_id = None;
    plain.reg_id = None;
    plain.q = None;
    let mut raw = AnyConnection::connect(store.url()).await.unwrap();
    insert_row(&mut raw, &flow).await.unwrap();
    insert_row(&mut raw, &plain).await.unwrap();

    store.migrate().await.unwrap();
    assert_eq!(
        store.live_bindings(now).await.unwrap(),
        [flow.clone(), plain.clone()],
        "every row and field survives (newest first)"
    );

    // The upgraded table takes a second flow of the same contact, as a binding of its own.
    let mut second_flow = flow.clone();
    second_flow.reg_id = Some(2);
    second_flow.flow_id = Some("flow-2".to_owned());
    let mut refreshed = plain.clone();
    refreshed.cseq += 1;
    store
        .apply_binding_changes(&[
            BindingChange::Upsert(second_flow.clone()),
            BindingChange::Upsert(refreshed.clone()),
        ])
        .await
        .unwrap();
    let mut live = store.live_bindings(now).await.unwrap();
    live.sort_by_key(|b| (b.contact_uri.clone(), b.reg_id));
    assert_eq!(live, [flow, second_flow, refreshed.clone()]);

    // The database itself allows one row per key, a missing reg-id being a value too.
    let duplicate = insert_row(&mut raw, &refreshed).await;
    assert!(
        matches!(&duplicate, Err(sqlx::Error::Database(db)) if db.is_unique_violation()),
        "{duplicate:?}"
    );
    raw.close().await.unwrap();
}
