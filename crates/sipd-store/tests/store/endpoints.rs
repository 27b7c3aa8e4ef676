use crate::common::{
    application, binding, endpoint, main_account, new_endpoint, now_ms, sub_account,
};
use md5::{Digest, Md5};
use sipd_store::testing::{fresh_store, TEST_REALM};
use sipd_store::{Endpoint, EndpointFilter, EndpointPatch, NewEndpoint, Scope, StoreError};

fn md5_ha1(username: &str, password: &str) -> String {
    hex::encode(Md5::digest(format!("{username}:{TEST_REALM}:{password}")))
}

fn sha256_ha1(username: &str, password: &str) -> String {
    use sha2::Sha256;
    hex::encode(Sha256::digest(format!(
        "{username}:{TEST_REALM}:{password}"
    )))
}

#[tokio::test]
async fn credentials_carry_owner_family_application_and_permissions() {
    let store = fresh_store().await;
    let (main, _) = main_account(&store, "Acme").await;
    let (sub, _) = sub_account(&store, &main, "Branch").await;
    let app = application(&store, &sub, "ivr").await;
    let direct = endpoint(&store, &main, "direct").await;
    let branch = store
        .create_endpoint(NewEndpoint {
            application_id: Some(app.id),
            allow_voice: false,
            allow_message: false,
            allow_video: true,
            allow_same_domain: false,
            allow_other_domains: true,
            allow_phones: false,
            allow_apps: false,
            ..new_endpoint(&sub, "branch")
        })
        .await
        .unwrap();

    let credentials = |username: &'static str| {
        let store = &store;
        async move {
            store
                .credentials_by_username(username)
                .await
                .unwrap()
                .unwrap()
        }
    };
    let of_main = credentials("direct").await;
    assert_eq!(of_main.endpoint_pk, direct.id);
    assert_eq!(
        (of_main.account_id, of_main.account_family_id),
        (main.id, main.id),
        "a main account is its own family"
    );
    assert_eq!(of_main.application_id, None);
    // new_endpoint's flags.
    assert!(of_main.allow_voice && of_main.allow_message && !of_main.allow_video);
    assert!(of_main.allow_same_domain && !of_main.allow_other_domains);
    assert!(of_main.allow_phones && of_main.allow_apps);

    let of_sub = credentials("branch").await;
    assert_eq!(of_sub.endpoint_pk, branch.id);
    assert_eq!(
        (of_sub.account_id, of_sub.account_family_id),
        (sub.id, main.id),
        "a sub-account's family is its parent"
    );
    assert_eq!(of_sub.application_id, Some(app.id));
    assert!(!of_sub.allow_voice && !of_sub.allow_message && of_sub.allow_video);
    assert!(!of_sub.allow_same_domain && of_sub.allow_other_domains);
    assert!(!of_sub.allow_phones && !of_sub.allow_apps);

    // What the API changes is what the next read returns.
    store
        .update_endpoint(
            Scope::Account(sub.id),
            &branch.endpoint_id,
            EndpointPatch {
                application_id: Some(None),
                allow_voice: Some(true),
                allow_video: Some(false),
                ..EndpointPatch::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    let changed = credentials("branch").await;
    assert_eq!(changed.application_id, None);
    assert!(changed.allow_voice && !changed.allow_video && !changed.allow_message);
    assert_eq!(
        changed.credentials_changed_at,
        of_sub.credentials_changed_at
    );

    // Moved to the parent with its sub-account: the family stays, the owner changes.
    assert!(store.delete_sub_account(sub.id, false).await.unwrap());
    let moved = credentials("branch").await;
    assert_eq!(
        (moved.account_id, moved.account_family_id),
        (main.id, main.id)
    );
}

#[tokio::test]
async fn endpoint_crud_and_credentials() {
    let store = fresh_store().await;
    let (account, _) = main_account(&store, "Acme").await;
    let app = application(&store, &account, "ivr").await;
    let created = store
        .create_endpoint(NewEndpoint {
            application_id: Some(app.id),
            allow_video: true,
            ..new_endpoint(&account, "Alice01")
        })
        .await
        .unwrap();
    assert_eq!(created.endpoint_id.len(), 15);
    assert!(created.endpoint_id.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(created.username, "Alice01", "stored exactly as given");
    assert_eq!(created.alias, "Alice01 phone");
    assert_eq!(created.account_auth_id, account.auth_id);
    assert_eq!(created.sub_account, None);
    let bound = created.application.clone().unwrap();
    assert_eq!(
        (bound.app_id.as_str(), bound.app_name.as_str()),
        (app.app_id.as_str(), "ivr")
    );
    assert_eq!(bound.account_auth_id, account.auth_id);
    assert!(created.allow_video && created.allow_voice && !created.allow_other_domains);
    assert_eq!(created.registration, None);
    assert_eq!(created.credentials_changed_at, created.created_at);

    let scope = Scope::Account(account.id);
    assert_eq!(
        store
            .get_endpoint(scope, &created.endpoint_id)
            .await
            .unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        store.get_endpoint(scope, "999999999999999").await.unwrap(),
        None
    );

    let credentials = store
        .credentials_by_username("Alice01")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credentials.endpoint_pk, created.id);
    assert_eq!(credentials.endpoint_id, created.endpoint_id);
    assert_eq!(credentials.account_id, account.id);
    assert_eq!(credentials.ha1_md5, md5_ha1("Alice01", "correct horse"));
    assert_eq!(
        credentials.ha1_sha256,
        sha256_ha1("Alice01", "correct horse")
    );
    assert!(!format!("{credentials:?}").contains(&credentials.ha1_md5));
    assert_eq!(
        store.credentials_by_username("alice01").await.unwrap(),
        None
    );

    let updated = store
        .update_endpoint(
            scope,
            &created.endpoint_id,
            EndpointPatch {
                alias: Some("Front desk".into()),
                application_id: Some(None),
                allow_voice: Some(false),
                allow_message: Some(false),
                allow_video: Some(false),
                password: None,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.alias, "Front desk");
    assert_eq!(updated.application, None);
    assert!(!updated.allow_voice && !updated.allow_message && !updated.allow_video);
    assert!(updated.allow_phones, "locked fields unchanged");
    assert_eq!(
        updated.credentials_changed_at,
        created.credentials_changed_at
    );
    let rebound = store
        .update_endpoint(
            scope,
            &created.endpoint_id,
            EndpointPatch {
                application_id: Some(Some(app.id)),
                ..EndpointPatch::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        rebound.application.map(|a| a.app_id),
        Some(app.app_id.clone())
    );
    let bad_app = store
        .update_endpoint(
            scope,
            &created.endpoint_id,
            EndpointPatch {
                application_id: Some(Some(app.id + 1000)),
                ..EndpointPatch::default()
            },
        )
        .await;
    assert!(
        matches!(bad_app, Err(StoreError::InvalidReference("application"))),
        "{bad_app:?}"
    );
    assert_eq!(
        store
            .update_endpoint(scope, "999999999999999", EndpointPatch::default())
            .await
            .unwrap(),
        None
    );

    assert!(store
        .delete_endpoint(scope, &created.endpoint_id)
        .await
        .unwrap());
    assert!(!store
        .delete_endpoint(scope, &created.endpoint_id)
        .await
        .unwrap());
    assert_eq!(
        store
            .get_endpoint(scope, &created.endpoint_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.credentials_by_username("Alice01").await.unwrap(),
        None
    );
    // The username is free again.
    endpoint(&store, &account, "Alice01").await;
}

#[tokio::test]
async fn usernames_are_unique_across_the_whole_domain() {
    let store = fresh_store().await;
    let (first, _) = main_account(&store, "First").await;
    let (second, _) = main_account(&store, "Second").await;
    let (child, _) = sub_account(&store, &first, "Child").await;
    endpoint(&store, &first, "taken").await;
    for owner in [&first, &second, &child] {
        let again = store.create_endpoint(new_endpoint(owner, "taken")).await;
        assert!(
            matches!(again, Err(StoreError::Conflict { field: "username" })),
            "{again:?}"
        );
    }
    // Exactly as given: a different case is a different username.
    endpoint(&store, &second, "Taken").await;

    let bad_app = store
        .create_endpoint(NewEndpoint {
            application_id: Some(123_456),
            ..new_endpoint(&first, "nobody")
        })
        .await;
    assert!(
        matches!(bad_app, Err(StoreError::InvalidReference("application"))),
        "{bad_app:?}"
    );
    let bad_owner = store
        .create_endpoint(NewEndpoint {
            account_id: child.id + 1000,
            ..new_endpoint(&first, "nobody")
        })
        .await;
    assert!(
        matches!(bad_owner, Err(StoreError::InvalidReference("account"))),
        "{bad_owner:?}"
    );
}

#[tokio::test]
async fn endpoint_filters_pagination_and_total() {
    let store = fresh_store().await;
    let (parent, _) = main_account(&store, "Parent").await;
    let (child, _) = sub_account(&store, &parent, "Child").await;
    let app = application(&store, &parent, "ivr").await;
    let other_app = application(&store, &parent, "other").await;
    let make = |owner: &sipd_store::Account, username: &str, alias: &str, app_id: Option<i64>| {
        let new = NewEndpoint {
            alias: alias.to_owned(),
            application_id: app_id,
            ..new_endpoint(owner, username)
        };
        let store = &store;
        async move { store.create_endpoint(new).await.unwrap() }
    };
    let alice = make(&parent, "alice1", "Alice Desk", Some(app.id)).await;
    let alina = make(&parent, "alina2", "alina_mobile", None).await;
    let bob = make(&parent, "bob3", "Bob 100%", Some(other_app.id)).await;
    let carol = make(&child, "ALICE4", "Carol's phone", Some(app.id)).await;
    let family = Scope::Family(parent.id);
    let list = |filter: EndpointFilter| {
        let store = &store;
        async move {
            let (endpoints, total) = store.list_endpoints(family, &filter, 20, 0).await.unwrap();
            assert_eq!(total as usize, endpoints.len());
            endpoints.iter().map(|e| e.id).collect::<Vec<_>>()
        }
    };

    assert_eq!(
        list(EndpointFilter::default()).await,
        vec![carol.id, bob.id, alina.id, alice.id]
    );
    let contains = EndpointFilter {
        username_contains: Some("li".into()),
        ..EndpointFilter::default()
    };
    assert_eq!(
        list(contains).await,
        vec![alina.id, alice.id],
        "case-sensitive"
    );
    let exact = EndpointFilter {
        username_exact: Some("bob3".into()),
        ..EndpointFilter::default()
    };
    assert_eq!(list(exact).await, vec![bob.id]);
    let starts = EndpointFilter {
        username_startswith: Some("al".into()),
        ..EndpointFilter::default()
    };
    assert_eq!(list(starts).await, vec![alina.id, alice.id]);
    let starts_upper = EndpointFilter {
        username_startswith: Some("AL".into()),
        ..EndpointFilter::default()
    };
    assert_eq!(list(starts_upper).await, vec![carol.id]);
    let wildcard = EndpointFilter {
        username_startswith: Some("_".into()),
        ..EndpointFilter::default()
    };
    assert_eq!(list(wildcard).await, Vec::<i64>::new(), "_ is literal");
    let alias_contains = EndpointFilter {
        alias_contains: Some("a_m".into()),
        ..EndpointFilter::default()
    };
    assert_eq!(list(alias_contains).await, vec![alina.id], "_ is literal");
    let alias_percent = EndpointFilter {
        alias_contains: Some("0%".into()),
        ..EndpointFilter::default()
    };
    assert_eq!(list(alias_percent).await, vec![bob.id], "% is literal");
    let alias_case = EndpointFilter {
        alias_contains: Some("desk".into()),
        ..EndpointFilter::default()
    };
    assert_eq!(list(alias_case).await, Vec::<i64>::new(), "case-sensitive");
    let alias_exact = EndpointFilter {
        alias_exact: Some("Carol's phone".into()),
        ..EndpointFilter::default()
    };
    assert_eq!(list(alias_exact).await, vec![carol.id]);
    let by_app = EndpointFilter {
        application_id_exact: Some(app.app_id.clone()),
        ..EndpointFilter::default()
    };
    assert_eq!(list(by_app).await, vec![carol.id, alice.id]);
    let no_app = EndpointFilter {
        application_id_isnull: Some(true),
        ..EndpointFilter::default()
    };
    assert_eq!(list(no_app).await, vec![alina.id]);
    let with_app = EndpointFilter {
        application_id_isnull: Some(false),
        ..EndpointFilter::default()
    };
    assert_eq!(list(with_app).await, vec![carol.id, bob.id, alice.id]);
    let of_child = EndpointFilter {
        account_id: Some(child.id),
        ..EndpointFilter::default()
    };
    assert_eq!(list(of_child).await, vec![carol.id]);
    let combined = EndpointFilter {
        username_contains: Some("a".into()),
        application_id_exact: Some(app.app_id.clone()),
        account_id: Some(parent.id),
        ..EndpointFilter::default()
    };
    assert_eq!(list(combined).await, vec![alice.id]);

    // Pagination keeps the filtered total.
    let filter = EndpointFilter {
        application_id_isnull: Some(false),
        ..EndpointFilter::default()
    };
    let (page, total) = store.list_endpoints(family, &filter, 2, 1).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(
        page.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![bob.id, alice.id]
    );
    let (page, total) = store.list_endpoints(family, &filter, 2, 10).await.unwrap();
    assert_eq!((page.len(), total), (0, 3));
    let (page, total) = store
        .list_endpoints(Scope::Account(child.id), &EndpointFilter::default(), 20, 0)
        .await
        .unwrap();
    assert_eq!((page.len(), total), (1, 1));
}

async fn registration_count(store: &sipd_store::Store, endpoint: &Endpoint) -> usize {
    let live = store.live_bindings(now_ms()).await.unwrap();
    live.iter().filter(|b| b.endpoint_pk == endpoint.id).count()
}

#[tokio::test]
async fn password_change_drops_registrations_and_changes_ha1() {
    let store = fresh_store().await;
    let (account, _) = main_account(&store, "Acme").await;
    let phone = endpoint(&store, &account, "deskphone").await;
    let other = endpoint(&store, &account, "otherphone").await;
    let now = now_ms();
    for (ep, contact) in [
        (&phone, "sip:a@192.0.2.1"),
        (&phone, "sip:b@192.0.2.2"),
        (&other, "sip:c@192.0.2.3"),
    ] {
        store
            .upsert_binding(&binding(ep, contact, now + 60_000, now))
            .await
            .unwrap();
    }
    let scope = Scope::Account(account.id);

    // An alias change keeps the registrations.
    store
        .update_endpoint(
            scope,
            &phone.endpoint_id,
            EndpointPatch {
                alias: Some("renamed".into()),
                ..EndpointPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(registration_count(&store, &phone).await, 2);

    let before = store
        .credentials_by_username("deskphone")
        .await
        .unwrap()
        .unwrap();
    let updated = store
        .update_endpoint(
            scope,
            &phone.endpoint_id,
            EndpointPatch {
                password: Some("new secret!".into()),
                ..EndpointPatch::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.registration, None);
    assert_eq!(updated.alias, "renamed");
    assert!(updated.credentials_changed_at >= before.credentials_changed_at);
    let after = store
        .credentials_by_username("deskphone")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.ha1_md5, md5_ha1("deskphone", "new secret!"));
    assert_eq!(after.ha1_sha256, sha256_ha1("deskphone", "new secret!"));
    assert_ne!(after.ha1_md5, before.ha1_md5);
    assert_eq!(after.credentials_changed_at, updated.credentials_changed_at);
    assert_eq!(registration_count(&store, &phone).await, 0);
    assert_eq!(
        registration_count(&store, &other).await,
        1,
        "other endpoints keep theirs"
    );
}

#[tokio::test]
async fn registration_summary_uses_the_newest_live_binding() {
    let store = fresh_store().await;
    let (account, _) = main_account(&store, "Acme").await;
    let phone = endpoint(&store, &account, "deskphone").await;
    let scope = Scope::Account(account.id);
    let now = now_ms();

    // Expired bindings are ignored, however new.
    store
        .upsert_binding(&binding(
            &phone,
            "sip:old@192.0.2.1",
            now - 1_000,
            now + 5_000,
        ))
        .await
        .unwrap();
    let read = store
        .get_endpoint(scope, &phone.endpoint_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.registration, None);
    assert!(store.live_bindings(now).await.unwrap().is_empty());

    store
        .upsert_binding(&binding(
            &phone,
            "sip:a@192.0.2.1",
            now + 60_000,
            now - 2_000,
        ))
        .await
        .unwrap();
    let mut newer = binding(&phone, "sip:b@192.0.2.2", now + 30_000, now - 1_000);
    newer.user_agent = None;
    newer.path = None;
    store.upsert_binding(&newer).await.unwrap();
    let read = store
        .get_endpoint(scope, &phone.endpoint_id)
        .await
        .unwrap()
        .unwrap();
    let summary = read.registration.expect("registered");
    assert_eq!(summary.contact, "sip:b@192.0.2.2");
    assert_eq!(summary.expires_at.timestamp_millis(), now + 30_000);
    assert_eq!(summary.user_agent, None);
    assert_eq!(summary.received.as_deref(), Some("192.0.2.10:5060"));
    assert_eq!(summary.path, None);

    // Refreshing `a` replaces its row (same endpoint, contact and reg-id) and makes it the newest.
    let mut refreshed = binding(&phone, "sip:a@192.0.2.1", now + 90_000, now);
    refreshed.cseq = 8;
    store.upsert_binding(&refreshed).await.unwrap();
    let (listed, _) = store
        .list_endpoints(scope, &EndpointFilter::default(), 20, 0)
        .await
        .unwrap();
    let summary = listed[0].registration.clone().unwrap();
    assert_eq!(summary.contact, "sip:a@192.0.2.1");
    assert_eq!(summary.user_agent.as_deref(), Some("Zoiper v5.4.5"));
    assert_eq!(summary.path.as_deref(), Some("<sip:edge.example.com;lr>"));

    let live = store.live_bindings(now).await.unwrap();
    assert_eq!(live.len(), 2);
    assert_eq!(live[0], refreshed, "every field round-trips");
    assert_eq!(live[1].contact_uri, "sip:b@192.0.2.2");

    // Read time decides: at a later "now", only the longer binding is live.
    let later = store.live_bindings(now + 45_000).await.unwrap();
    assert_eq!(
        later
            .iter()
            .map(|b| b.contact_uri.as_str())
            .collect::<Vec<_>>(),
        vec!["sip:a@192.0.2.1"]
    );

    store
        .delete_binding(phone.id, "sip:a@192.0.2.1", Some(1))
        .await
        .unwrap();
    store
        .delete_binding(phone.id, "sip:not-there", None)
        .await
        .unwrap();
    let read = store
        .get_endpoint(scope, &phone.endpoint_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.registration.unwrap().contact, "sip:b@192.0.2.2");

    let mut stray = binding(&phone, "sip:x@192.0.2.9", now + 60_000, now);
    stray.endpoint_pk = phone.id + 1000;
    let refused = store.upsert_binding(&stray).await;
    assert!(
        matches!(refused, Err(StoreError::InvalidReference("endpoint"))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn deleting_an_endpoint_deletes_its_bindings() {
    let store = fresh_store().await;
    let (account, _) = main_account(&store, "Acme").await;
    let phone = endpoint(&store, &account, "deskphone").await;
    let keep = endpoint(&store, &account, "keepphone").await;
    let now = now_ms();
    store
        .upsert_binding(&binding(&phone, "sip:a@192.0.2.1", now + 60_000, now))
        .await
        .unwrap();
    store
        .upsert_binding(&binding(&keep, "sip:k@192.0.2.5", now + 60_000, now))
        .await
        .unwrap();
    assert!(store
        .delete_endpoint(Scope::Family(account.id), &phone.endpoint_id)
        .await
        .unwrap());
    let live = store.live_bindings(now).await.unwrap();
    assert_eq!(
        live.iter().map(|b| b.endpoint_pk).collect::<Vec<_>>(),
        vec![keep.id]
    );
}
