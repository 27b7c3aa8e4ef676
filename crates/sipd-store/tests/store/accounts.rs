use crate::common::{application, endpoint, main_account, sub_account};
use sipd_store::testing::fresh_store;
use sipd_store::{AccountPatch, EndpointFilter, NewAccount, Scope, StoreError};
use sqlx::{Connection, Row};
use std::collections::BTreeMap;

#[tokio::test]
async fn generated_credentials_authenticate_and_wrong_ones_do_not() {
    let store = fresh_store().await;
    let (account, token) = main_account(&store, "Acme").await;

    assert!(account.auth_id.starts_with("MA_"));
    assert_eq!(account.auth_id.len(), 11);
    assert!(account.auth_id[3..]
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
    assert_eq!(token.len(), 40);
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(account.parent_id, None);
    assert_eq!(account.rate_limit, 1000);
    assert_eq!(account.kyc_mode, "personal_use");
    assert!(account.enabled);
    assert_eq!(account.last_used, None);

    let authenticated = store.authenticate(&account.auth_id, &token).await.unwrap();
    let authenticated = authenticated.expect("right token authenticates");
    assert_eq!(authenticated.id, account.id);
    assert!(authenticated.last_used.is_some());

    let mut wrong = token.clone();
    wrong.replace_range(0..1, if wrong.starts_with('a') { "b" } else { "a" });
    assert_eq!(
        store.authenticate(&account.auth_id, &wrong).await.unwrap(),
        None
    );
    assert_eq!(
        store.authenticate(&account.auth_id, "").await.unwrap(),
        None
    );
    assert_eq!(
        store.authenticate("MA_UNKNOWN0", &token).await.unwrap(),
        None
    );

    assert_eq!(
        store.account_auth_token(account.id).await.unwrap(),
        Some(token)
    );
    assert_eq!(
        store.account_auth_token(account.id + 1000).await.unwrap(),
        None
    );
    let by_auth_id = store
        .account_by_auth_id(&account.auth_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_auth_id.id, account.id);
    assert!(
        by_auth_id.last_used.is_some(),
        "authenticate records last_used"
    );
    assert_eq!(store.account_by_id(account.id + 1000).await.unwrap(), None);
}

#[tokio::test]
async fn chosen_credentials_are_kept_and_a_taken_auth_id_conflicts() {
    let store = fresh_store().await;
    let chosen = NewAccount {
        name: "Chosen".into(),
        auth_id: Some("MA_CHOSEN01".into()),
        auth_token: Some("my-chosen-token".into()),
        email: Some("ops@example.com".into()),
        rate_limit: Some(5),
        permissions: BTreeMap::from([("calls".to_owned(), true), ("cdr".to_owned(), false)]),
        enabled: Some(false),
        kyc_mode: Some("customer_use".into()),
        business_type: Some("llp".into()),
        ..NewAccount::default()
    };
    let (account, token) = store.create_account(chosen.clone()).await.unwrap();
    assert_eq!(account.auth_id, "MA_CHOSEN01");
    assert_eq!(token, "my-chosen-token");
    assert_eq!(account.email.as_deref(), Some("ops@example.com"));
    assert_eq!(account.rate_limit, 5);
    assert_eq!(account.permissions, chosen.permissions);
    assert!(!account.enabled);
    assert_eq!(account.kyc_mode, "customer_use");
    assert_eq!(account.business_type.as_deref(), Some("llp"));
    // Disabled accounts still authenticate; the API decides what they may do.
    assert!(store
        .authenticate("MA_CHOSEN01", "my-chosen-token")
        .await
        .unwrap()
        .is_some());

    let again = store.create_account(chosen).await;
    assert!(
        matches!(again, Err(StoreError::Conflict { field: "auth_id" })),
        "{again:?}"
    );
}

#[tokio::test]
async fn auth_token_is_encrypted_at_rest() {
    let store = fresh_store().await;
    let (account, token) = main_account(&store, "Secretive").await;
    let mut raw = sqlx::AnyConnection::connect(store.url()).await.unwrap();
    let row = sqlx::query(
        "SELECT auth_id, name, permissions, auth_token_nonce, auth_token_ciphertext, auth_token_hmac \
         FROM accounts WHERE id = $1",
    )
    .bind(account.id)
    .fetch_one(&mut raw)
    .await
    .unwrap();
    let nonce: Vec<u8> = row.get("auth_token_nonce");
    assert_eq!(nonce.len(), 12);
    let contains_token = |bytes: &[u8]| bytes.windows(token.len()).any(|w| w == token.as_bytes());
    for column in ["auth_token_ciphertext", "auth_token_hmac"] {
        let bytes: Vec<u8> = row.get(column);
        assert!(!contains_token(&bytes), "{column} holds the clear token");
    }
    for column in ["auth_id", "name", "permissions"] {
        let text: String = row.get(column);
        assert!(!text.contains(&token), "{column} holds the clear token");
    }
    raw.close().await.unwrap();

    // SQLite: the whole database (file and write-ahead log) never sees the clear token.
    if !store.is_postgres() {
        let path = store
            .url()
            .trim_start_matches("sqlite://")
            .split('?')
            .next()
            .unwrap()
            .to_owned();
        for file in [path.clone(), format!("{path}-wal")] {
            if let Ok(bytes) = std::fs::read(&file) {
                assert!(!contains_token(&bytes), "{file} holds the clear token");
            }
        }
    }

    // A store with another key cannot read it (and does not authenticate it).
    let mut other_options = store.options();
    other_options.secret_key = [0x42; 32];
    let other = sipd_store::Store::connect(other_options).await.unwrap();
    assert!(matches!(
        other.account_auth_token(account.id).await,
        Err(StoreError::Database(_))
    ));
    assert_eq!(
        other.authenticate(&account.auth_id, &token).await.unwrap(),
        None
    );
    // The same key from a second store does.
    let second = sipd_store::Store::connect(store.options()).await.unwrap();
    assert_eq!(
        second.account_auth_token(account.id).await.unwrap(),
        Some(token)
    );
}

#[tokio::test]
async fn sub_accounts_are_one_level_deep_and_listed_newest_first() {
    let store = fresh_store().await;
    let (parent, _) = main_account(&store, "Parent").await;
    let (other_parent, _) = main_account(&store, "Other").await;
    let (first, first_token) = sub_account(&store, &parent, "Tenant 1").await;
    let (second, _) = sub_account(&store, &parent, "Tenant 2").await;
    let (third, _) = sub_account(&store, &parent, "Tenant 3").await;
    sub_account(&store, &other_parent, "Not mine").await;

    assert!(first.auth_id.starts_with("SA_"));
    assert_eq!(first.parent_id, Some(parent.id));
    assert_eq!(
        first.parent_auth_id.as_deref(),
        Some(parent.auth_id.as_str())
    );
    assert!(store
        .authenticate(&first.auth_id, &first_token)
        .await
        .unwrap()
        .is_some());

    let nested = store
        .create_account(NewAccount {
            name: "Grandchild".into(),
            parent_id: Some(first.id),
            ..NewAccount::default()
        })
        .await;
    assert!(
        matches!(nested, Err(StoreError::InvalidReference(_))),
        "{nested:?}"
    );
    let orphan = store
        .create_account(NewAccount {
            name: "Orphan".into(),
            parent_id: Some(third.id + 1000),
            ..NewAccount::default()
        })
        .await;
    assert!(
        matches!(orphan, Err(StoreError::InvalidReference(_))),
        "{orphan:?}"
    );

    let (all, total) = store
        .list_sub_accounts(parent.id, false, 10, 0)
        .await
        .unwrap();
    assert_eq!(total, 3);
    let ids: Vec<i64> = all.iter().map(|a| a.id).collect();
    assert_eq!(ids, vec![third.id, second.id, first.id]);

    let (page, total) = store
        .list_sub_accounts(parent.id, false, 1, 1)
        .await
        .unwrap();
    assert_eq!((page.len(), total), (1, 3));
    assert_eq!(page[0].id, second.id);

    store
        .update_account(
            second.id,
            AccountPatch {
                enabled: Some(false),
                ..AccountPatch::default()
            },
        )
        .await
        .unwrap();
    let (active, total) = store
        .list_sub_accounts(parent.id, true, 10, 0)
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert!(active.iter().all(|a| a.id != second.id));
    let (empty, total) = store
        .list_sub_accounts(parent.id, false, 10, 50)
        .await
        .unwrap();
    assert_eq!((empty.len(), total), (0, 3));
}

#[tokio::test]
async fn update_account_patches_only_what_is_given() {
    let store = fresh_store().await;
    let (parent, _) = main_account(&store, "Parent").await;
    let (child, _) = store
        .create_account(NewAccount {
            name: "Child".into(),
            parent_id: Some(parent.id),
            email: Some("child@example.com".into()),
            phone: Some("+15550100".into()),
            ..NewAccount::default()
        })
        .await
        .unwrap();
    let updated = store
        .update_account(
            child.id,
            AccountPatch {
                name: Some("Renamed".into()),
                email: Some(None),
                rate_limit: Some(10),
                permissions: Some(BTreeMap::from([("calls".to_owned(), false)])),
                kyc_mode: Some("customer_use".into()),
                business_type: Some(Some("trust".into())),
                description: Some(Some("desc".into())),
                ..AccountPatch::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.name, "Renamed");
    assert_eq!(updated.email, None);
    assert_eq!(updated.phone.as_deref(), Some("+15550100"));
    assert_eq!(updated.rate_limit, 10);
    assert_eq!(updated.permissions.get("calls"), Some(&false));
    assert_eq!(updated.kyc_mode, "customer_use");
    assert_eq!(updated.business_type.as_deref(), Some("trust"));
    assert_eq!(updated.description.as_deref(), Some("desc"));
    assert_eq!(
        updated.parent_auth_id.as_deref(),
        Some(parent.auth_id.as_str())
    );
    assert!(updated.updated_at >= child.updated_at);
    assert_eq!(updated.created_at, child.created_at);

    let missing = store
        .update_account(child.id + 1000, AccountPatch::default())
        .await
        .unwrap();
    assert_eq!(missing, None);
}

#[tokio::test]
async fn deleting_a_sub_account_cascades_or_reparents() {
    let store = fresh_store().await;
    let (parent, _) = main_account(&store, "Parent").await;
    let parent_default = store
        .create_application(sipd_store::NewApplication {
            default_endpoint_app: true,
            ..crate::common::new_application(&parent, "parent_default")
        })
        .await
        .unwrap();

    // Re-parent: the child's rows move to the parent; its default flag does not override the parent's.
    let (moving, _) = sub_account(&store, &parent, "Moving").await;
    let moving_app = store
        .create_application(sipd_store::NewApplication {
            default_endpoint_app: true,
            ..crate::common::new_application(&moving, "moving_app")
        })
        .await
        .unwrap();
    let moving_endpoint = endpoint(&store, &moving, "movinguser").await;
    assert!(store.delete_sub_account(moving.id, false).await.unwrap());
    assert_eq!(store.account_by_id(moving.id).await.unwrap(), None);
    let moved_app = store
        .get_application(Scope::Account(parent.id), &moving_app.app_id)
        .await
        .unwrap()
        .expect("app moved to the parent");
    assert_eq!(moved_app.sub_account, None);
    assert!(!moved_app.default_endpoint_app);
    let default = store
        .default_endpoint_application(parent.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(default.id, parent_default.id);
    let moved_endpoint = store
        .get_endpoint(Scope::Account(parent.id), &moving_endpoint.endpoint_id)
        .await
        .unwrap()
        .expect("endpoint moved to the parent");
    assert_eq!(moved_endpoint.sub_account, None);
    assert_eq!(moved_endpoint.account_auth_id, parent.auth_id);

    // Cascade: the child's rows go; bindings with them; the parent's endpoint bound to the child's
    // app loses its app.
    let (doomed, _) = sub_account(&store, &parent, "Doomed").await;
    let doomed_app = application(&store, &doomed, "doomed_app").await;
    let doomed_endpoint = endpoint(&store, &doomed, "doomeduser").await;
    let now = crate::common::now_ms();
    store
        .upsert_binding(&crate::common::binding(
            &doomed_endpoint,
            "sip:d@192.0.2.1",
            now + 60_000,
            now,
        ))
        .await
        .unwrap();
    let parent_endpoint = store
        .create_endpoint(sipd_store::NewEndpoint {
            application_id: Some(doomed_app.id),
            ..crate::common::new_endpoint(&parent, "parentuser")
        })
        .await
        .unwrap();
    assert!(store.delete_sub_account(doomed.id, true).await.unwrap());
    assert_eq!(store.account_by_id(doomed.id).await.unwrap(), None);
    let family = Scope::Family(parent.id);
    assert_eq!(
        store
            .get_application(family, &doomed_app.app_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_endpoint(family, &doomed_endpoint.endpoint_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.credentials_by_username("doomeduser").await.unwrap(),
        None
    );
    assert!(store.live_bindings(now).await.unwrap().is_empty());
    let unbound = store
        .get_endpoint(family, &parent_endpoint.endpoint_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unbound.application, None);
    let (endpoints, total) = store
        .list_endpoints(family, &EndpointFilter::default(), 10, 0)
        .await
        .unwrap();
    assert_eq!(total, 2, "{endpoints:?}");

    // Not sub-accounts: nothing happens.
    assert!(!store.delete_sub_account(parent.id, true).await.unwrap());
    assert!(!store.delete_sub_account(doomed.id, true).await.unwrap());
    assert!(store.account_by_id(parent.id).await.unwrap().is_some());
}
