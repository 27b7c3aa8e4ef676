use crate::common::{application, endpoint, main_account, new_application, sub_account};
use sipd_store::testing::fresh_store;
use sipd_store::{
    ApplicationFilter, ApplicationPatch, EndpointPatch, NewApplication, NewEndpoint, Scope,
    StoreError,
};

#[tokio::test]
async fn application_crud() {
    let store = fresh_store().await;
    let (account, _) = main_account(&store, "Acme").await;
    let created = store
        .create_application(NewApplication {
            hangup_url: Some("https://example.com/hangup".into()),
            message_url: Some("https://example.com/sms".into()),
            public_uri: true,
            ..new_application(&account, "ivr")
        })
        .await
        .unwrap();
    assert_eq!(created.app_id.len(), 17);
    assert!(created.app_id.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(created.account_id, account.id);
    assert_eq!(created.account_auth_id, account.auth_id);
    assert_eq!(created.sub_account, None);
    assert_eq!(
        created.hangup_url.as_deref(),
        Some("https://example.com/hangup")
    );
    assert!(created.public_uri && created.enabled && created.log_incoming_message);
    assert!(!created.default_app && !created.default_endpoint_app && !created.default_number_app);

    let scope = Scope::Account(account.id);
    assert_eq!(
        store.get_application(scope, &created.app_id).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        store
            .get_application(scope, "12345678901234567")
            .await
            .unwrap(),
        None
    );

    let updated = store
        .update_application(
            scope,
            &created.app_id,
            ApplicationPatch {
                app_name: Some("ivr2".into()),
                hangup_url: Some(None),
                fallback_answer_url: Some(Some("https://example.com/fallback".into())),
                enabled: Some(false),
                answer_method: Some("GET".into()),
                ..ApplicationPatch::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.app_name, "ivr2");
    assert_eq!(updated.hangup_url, None);
    assert_eq!(
        updated.message_url.as_deref(),
        Some("https://example.com/sms")
    );
    assert_eq!(
        updated.fallback_answer_url.as_deref(),
        Some("https://example.com/fallback")
    );
    assert_eq!(updated.answer_method, "GET");
    assert!(!updated.enabled);
    assert!(updated.public_uri);
    assert_eq!(updated.created_at, created.created_at);

    let missing = store
        .update_application(scope, "12345678901234567", ApplicationPatch::default())
        .await
        .unwrap();
    assert_eq!(missing, None);

    // Deleting an app unbinds its endpoints.
    let bound = store
        .create_endpoint(NewEndpoint {
            application_id: Some(created.id),
            ..crate::common::new_endpoint(&account, "bounduser")
        })
        .await
        .unwrap();
    assert_eq!(
        bound.application.as_ref().map(|a| a.app_name.as_str()),
        Some("ivr2")
    );
    assert!(store
        .delete_application(scope, &created.app_id)
        .await
        .unwrap());
    assert!(!store
        .delete_application(scope, &created.app_id)
        .await
        .unwrap());
    assert_eq!(
        store.get_application(scope, &created.app_id).await.unwrap(),
        None
    );
    let unbound = store
        .get_endpoint(scope, &bound.endpoint_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unbound.application, None);

    let orphan = store.create_application(NewApplication {
        account_id: account.id + 1000,
        ..new_application(&account, "orphan")
    });
    assert!(matches!(
        orphan.await,
        Err(StoreError::InvalidReference("account"))
    ));
}

#[tokio::test]
async fn default_flags_move_within_an_account() {
    let store = fresh_store().await;
    let (account, _) = main_account(&store, "Acme").await;
    let (other, _) = main_account(&store, "Other").await;
    let scope = Scope::Account(account.id);
    let first = store
        .create_application(NewApplication {
            default_endpoint_app: true,
            default_number_app: true,
            ..new_application(&account, "first")
        })
        .await
        .unwrap();
    let others_default = store
        .create_application(NewApplication {
            default_endpoint_app: true,
            ..new_application(&other, "others")
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .default_endpoint_application(account.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        first.id
    );

    let second = store
        .create_application(NewApplication {
            default_endpoint_app: true,
            ..new_application(&account, "second")
        })
        .await
        .unwrap();
    let first_now = store
        .get_application(scope, &first.app_id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !first_now.default_endpoint_app,
        "the endpoint flag moved to the new app"
    );
    assert!(first_now.default_number_app, "the number flag did not move");
    assert_eq!(
        store
            .default_endpoint_application(account.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        second.id
    );

    let moved_back = store
        .update_application(
            scope,
            &first.app_id,
            ApplicationPatch {
                default_endpoint_app: Some(true),
                ..ApplicationPatch::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(moved_back.default_endpoint_app);
    let second_now = store
        .get_application(scope, &second.app_id)
        .await
        .unwrap()
        .unwrap();
    assert!(!second_now.default_endpoint_app);
    assert_eq!(
        store
            .default_endpoint_application(account.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        first.id
    );

    // Another account's default is untouched.
    assert_eq!(
        store
            .default_endpoint_application(other.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        others_default.id
    );

    store
        .update_application(
            scope,
            &first.app_id,
            ApplicationPatch {
                default_endpoint_app: Some(false),
                ..ApplicationPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .default_endpoint_application(account.id)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn scope_isolates_accounts_and_families() {
    let store = fresh_store().await;
    let (parent, _) = main_account(&store, "Parent").await;
    let (child, _) = sub_account(&store, &parent, "Child").await;
    let (sibling, _) = sub_account(&store, &parent, "Sibling").await;
    let (stranger, _) = main_account(&store, "Stranger").await;
    let parent_app = application(&store, &parent, "parent_app").await;
    let child_app = application(&store, &child, "child_app").await;
    let stranger_app = application(&store, &stranger, "stranger_app").await;
    assert_eq!(
        child_app.sub_account.as_deref(),
        Some(child.auth_id.as_str())
    );
    assert_eq!(child_app.account_auth_id, child.auth_id);

    let family = Scope::Family(parent.id);
    assert!(store
        .get_application(family, &parent_app.app_id)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .get_application(family, &child_app.app_id)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store
            .get_application(family, &stranger_app.app_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_application(Scope::Account(parent.id), &child_app.app_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_application(Scope::Account(child.id), &parent_app.app_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_application(Scope::Account(sibling.id), &child_app.app_id)
            .await
            .unwrap(),
        None
    );
    // A sub-account's "family" is just itself.
    assert_eq!(
        store
            .get_application(Scope::Family(child.id), &parent_app.app_id)
            .await
            .unwrap(),
        None
    );

    let (apps, total) = store
        .list_applications(family, &ApplicationFilter::default(), 20, 0)
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(
        apps.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![child_app.id, parent_app.id],
        "newest first"
    );
    let (apps, total) = store
        .list_applications(
            Scope::Account(child.id),
            &ApplicationFilter::default(),
            20,
            0,
        )
        .await
        .unwrap();
    assert_eq!((apps.len(), total), (1, 1));

    let sibling_scope = Scope::Account(sibling.id);
    let patch = ApplicationPatch {
        app_name: Some("hijacked".into()),
        ..ApplicationPatch::default()
    };
    assert_eq!(
        store
            .update_application(sibling_scope, &child_app.app_id, patch)
            .await
            .unwrap(),
        None
    );
    assert!(!store
        .delete_application(sibling_scope, &child_app.app_id)
        .await
        .unwrap());
    assert!(!store
        .delete_application(Scope::Family(stranger.id), &child_app.app_id)
        .await
        .unwrap());
    let still = store
        .get_application(family, &child_app.app_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.app_name, "child_app");
    assert!(store
        .delete_application(family, &child_app.app_id)
        .await
        .unwrap());

    // Endpoints follow the same rules.
    let child_endpoint = endpoint(&store, &child, "childuser").await;
    assert_eq!(
        child_endpoint.sub_account.as_deref(),
        Some(child.auth_id.as_str())
    );
    assert!(store
        .get_endpoint(family, &child_endpoint.endpoint_id)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store
            .get_endpoint(sibling_scope, &child_endpoint.endpoint_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_endpoint(Scope::Account(parent.id), &child_endpoint.endpoint_id)
            .await
            .unwrap(),
        None
    );
    let alias_patch = EndpointPatch {
        alias: Some("hijacked".into()),
        ..EndpointPatch::default()
    };
    assert_eq!(
        store
            .update_endpoint(sibling_scope, &child_endpoint.endpoint_id, alias_patch)
            .await
            .unwrap(),
        None
    );
    assert!(!store
        .delete_endpoint(sibling_scope, &child_endpoint.endpoint_id)
        .await
        .unwrap());
    assert!(!store
        .delete_endpoint(Scope::Family(stranger.id), &child_endpoint.endpoint_id)
        .await
        .unwrap());
    assert!(store
        .delete_endpoint(family, &child_endpoint.endpoint_id)
        .await
        .unwrap());
}

#[tokio::test]
async fn application_filters_and_pagination() {
    let store = fresh_store().await;
    let (parent, _) = main_account(&store, "Parent").await;
    let (child, _) = sub_account(&store, &parent, "Child").await;
    let mut created = Vec::new();
    for name in ["sales_ivr", "Sales_Queue", "support", "sales%50"] {
        created.push(application(&store, &parent, name).await);
    }
    let child_app = application(&store, &child, "sales_child").await;
    let family = Scope::Family(parent.id);
    let names = |apps: &[sipd_store::Application]| {
        apps.iter().map(|a| a.app_name.clone()).collect::<Vec<_>>()
    };

    let filter = ApplicationFilter {
        app_name_contains: Some("sales".into()),
        ..ApplicationFilter::default()
    };
    let (apps, total) = store
        .list_applications(family, &filter, 20, 0)
        .await
        .unwrap();
    assert_eq!(total, 3, "case-sensitive contains: {:?}", names(&apps));
    assert_eq!(names(&apps), vec!["sales_child", "sales%50", "sales_ivr"]);

    let filter = ApplicationFilter {
        app_name_contains: Some("s%5".into()),
        ..ApplicationFilter::default()
    };
    let (apps, _) = store
        .list_applications(family, &filter, 20, 0)
        .await
        .unwrap();
    assert_eq!(names(&apps), vec!["sales%50"], "% is literal");

    let filter = ApplicationFilter {
        app_name_exact: Some("support".into()),
        ..ApplicationFilter::default()
    };
    let (apps, total) = store
        .list_applications(family, &filter, 20, 0)
        .await
        .unwrap();
    assert_eq!((names(&apps), total), (vec!["support".to_owned()], 1));

    let filter = ApplicationFilter {
        account_id: Some(child.id),
        ..ApplicationFilter::default()
    };
    let (apps, total) = store
        .list_applications(family, &filter, 20, 0)
        .await
        .unwrap();
    assert_eq!(total, 1);
    assert_eq!(apps[0].id, child_app.id);

    let (page, total) = store
        .list_applications(family, &ApplicationFilter::default(), 2, 2)
        .await
        .unwrap();
    assert_eq!(total, 5);
    assert_eq!(
        page.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![created[2].id, created[1].id]
    );
    let (page, total) = store
        .list_applications(family, &ApplicationFilter::default(), -5, -5)
        .await
        .unwrap();
    assert_eq!(
        (page.len(), total),
        (0, 5),
        "negative paging is empty, not unbounded"
    );
}
