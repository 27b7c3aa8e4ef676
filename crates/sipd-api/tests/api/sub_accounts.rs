//! Sub-account management and isolation between a main account and its children.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{create_account, start, Creds, TestApi};

fn sub_accounts_path(auth_id: &str) -> String {
    format!("/api/v1/accounts/{auth_id}/sub-accounts/")
}

async fn create_sub_account(api: &TestApi, body: Value) -> (Value, Creds) {
    let reply = api
        .post(&sub_accounts_path(&api.main.auth_id), &api.main, body)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let creds = Creds {
        auth_id: reply.json["auth_credentials"]["auth_id"]
            .as_str()
            .unwrap()
            .to_owned(),
        auth_token: reply.json["auth_credentials"]["auth_token"]
            .as_str()
            .unwrap()
            .to_owned(),
    };
    (reply.json, creds)
}

#[tokio::test]
async fn create_replies_201_with_the_clear_token_once() {
    let api = start().await;
    let main = &api.main;
    // What vobiz-python 0.1.1 `subaccounts.create(...)` sends.
    let (reply, creds) = create_sub_account(
        &api,
        json!({"name": "Tenant A", "email": "ops@tenant-a.example", "rate_limit": 500,
               "permissions": {"calls": true, "cdr": false}, "password": "console-only", "enabled": true,
               "phone": "+91 98123 45678", "description": "first tenant"}),
    )
    .await;
    assert_eq!(reply["message"], "Sub-account created successfully");
    assert!(reply["api_id"].is_string());
    assert_eq!(reply["tokens"], Value::Null);
    let sub = &reply["sub_account"];
    assert!(creds.auth_id.starts_with("SA_"), "{}", creds.auth_id);
    assert_eq!(sub["auth_id"], creds.auth_id.as_str());
    assert_eq!(sub["auth_token"], creds.auth_token.as_str());
    assert_ne!(creds.auth_token, "<redacted>");
    assert_eq!(sub["name"], "Tenant A");
    assert_eq!(sub["email"], "ops@tenant-a.example");
    assert_eq!(sub["phone"], "+91 98123 45678");
    assert_eq!(sub["description"], "first tenant");
    assert_eq!(sub["rate_limit"], 500);
    assert_eq!(sub["permissions"], json!({"calls": true, "cdr": false}));
    assert_eq!(sub["parent_auth_id"], main.auth_id.as_str());
    assert_eq!(sub["parent_account_id"], api.main_account.id.to_string());
    assert!(sub["id"].as_str().unwrap().parse::<i64>().is_ok());
    assert_eq!(sub["enabled"], true);
    assert_eq!(sub["is_active"], true);
    assert_eq!(sub["email_verified"], false);
    assert_eq!(sub["kyc_mode"], "personal_use");
    assert_eq!(sub["kyc_calls_blocked"], false);
    assert_eq!(sub["business_type"], Value::Null);
    assert_eq!(sub["last_used"], Value::Null);
    assert_eq!(sub["account"], format!("/v1/Account/{}/", main.auth_id));
    assert_eq!(
        sub["resource_uri"],
        format!("/v1/Account/{}/Subaccount/{}/", main.auth_id, creds.auth_id)
    );
    assert_eq!(sub["created"].as_str().unwrap().len(), 10);
    assert!(sub["created_at"].as_str().unwrap().ends_with('Z'));

    // The new credentials work, and later reads redact the token.
    let own = api
        .get(&api.account_path(&creds.auth_id, "Endpoint/"), &creds)
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    let read = api
        .get(
            &format!(
                "/api/v1/accounts/{}/sub-accounts/{}",
                main.auth_id, creds.auth_id
            ),
            main,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert_eq!(read.json["auth_token"], "<redacted>");
    assert_eq!(read.json["name"], "Tenant A");
    // ... by numeric id too (the SDK README passes `sub_account.id`).
    let by_id = api
        .get(
            &format!(
                "/api/v1/accounts/{}/sub-accounts/{}",
                main.auth_id,
                sub["id"].as_str().unwrap()
            ),
            main,
        )
        .await;
    assert_eq!(by_id.status, StatusCode::OK, "{}", by_id.text);
    assert_eq!(by_id.json["auth_id"], creds.auth_id.as_str());
}

#[tokio::test]
async fn create_validates_fields() {
    let api = start().await;
    let path = sub_accounts_path(&api.main.auth_id);
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"name": "a", "email": "not-an-email"}), "email"),
        (json!({"name": "a", "kyc_mode": "customer_use"}), "email"),
        (json!({"name": "a", "kyc_mode": "business"}), "kyc_mode"),
        (
            json!({"name": "a", "business_type": "empire"}),
            "business_type",
        ),
        (json!({"name": "a", "rate_limit": 0}), "rate_limit"),
        (json!({"name": "a", "rate_limit": "lots"}), "rate_limit"),
        (json!({"name": "a", "phone": "call me"}), "phone"),
        (
            json!({"name": "a", "permissions": {"calls": "yes"}}),
            "permissions.calls",
        ),
    ] {
        let reply = api.post(&path, &api.main, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text
        );
        assert!(!reply.detail(field).is_empty(), "{body}");
    }
    let customer = api
        .post(
            &path,
            &api.main,
            json!({"name": "c", "kyc_mode": "customer_use", "email": "c@c.example",
                                        "business_type": "llp"}),
        )
        .await;
    assert_eq!(customer.status, StatusCode::CREATED, "{}", customer.text);
}

#[tokio::test]
async fn list_pages_newest_first_and_filters_active() {
    let api = start().await;
    let main = &api.main;
    for n in 0..4 {
        create_sub_account(
            &api,
            json!({"name": format!("tenant{n}"), "enabled": n != 1}),
        )
        .await;
    }
    let path = sub_accounts_path(&main.auth_id);
    let all = api.get(&path, main).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert_eq!(all.json["total"], 4);
    assert_eq!(all.json["page"], 1);
    assert_eq!(all.json["size"], 25);
    let list = all.json["sub_accounts"].as_array().unwrap();
    assert_eq!(list[0]["name"], "tenant3", "newest first");
    assert!(list.iter().all(|sub| sub["auth_token"] == "<redacted>"));

    let second = api.get(&format!("{path}?page=2&size=3"), main).await.json;
    assert_eq!(second["sub_accounts"].as_array().unwrap().len(), 1);
    assert_eq!(second["sub_accounts"][0]["name"], "tenant0");
    assert_eq!(second["total"], 4);

    // The SDK sends Python booleans as `True`.
    let active = api
        .get(&format!("{path}?active_only=True"), main)
        .await
        .json;
    assert_eq!(active["total"], 3);

    for query in ["page=0", "size=0", "active_only=sometimes", "page=x"] {
        let reply = api.get(&format!("{path}?{query}"), main).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn update_with_put_returns_the_full_object() {
    let api = start().await;
    let main = &api.main;
    let (_, creds) =
        create_sub_account(&api, json!({"name": "before", "email": "a@b.example"})).await;
    let path = format!(
        "/api/v1/accounts/{}/sub-accounts/{}",
        main.auth_id, creds.auth_id
    );
    let reply = api
        .put(
            &path,
            main,
            json!({"name": "after", "rate_limit": 10, "phone": "+1 555 0100",
                                  "email": null, "permissions": {"calls": false}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["name"], "after");
    assert_eq!(reply.json["rate_limit"], 10);
    assert_eq!(reply.json["phone"], "+1 555 0100");
    assert_eq!(reply.json["email"], Value::Null);
    assert_eq!(reply.json["permissions"], json!({"calls": false}));
    assert_eq!(reply.json["auth_token"], "<redacted>");
    assert!(reply.json["api_id"].is_string());

    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"kyc_mode": "customer_use"}), "email"),
        (json!({"business_type": "x"}), "business_type"),
        (json!({"rate_limit": -1}), "rate_limit"),
    ] {
        let bad = api.put(&path, main, body.clone()).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{body}: {}", bad.text);
        assert!(!bad.detail(field).is_empty());
    }

    // Disabling blocks the sub-account's own API calls.
    let disabled = api.put(&path, main, json!({"enabled": false})).await;
    assert_eq!(disabled.json["enabled"], false);
    assert_eq!(disabled.json["is_active"], false);
    let blocked = api
        .get(&api.account_path(&creds.auth_id, "Endpoint/"), &creds)
        .await;
    assert_eq!(blocked.status, StatusCode::FORBIDDEN, "{}", blocked.text);
    assert_eq!(blocked.error(), "account disabled");
}

#[tokio::test]
async fn delete_reparents_by_default_and_cascades_on_request() {
    let api = start().await;
    let main = &api.main;
    let (_, kept) = create_sub_account(&api, json!({"name": "kept"})).await;
    let (_, cascaded) = create_sub_account(&api, json!({"name": "cascaded"})).await;
    let kept_endpoint = api
        .create_endpoint(
            &kept,
            &kept.auth_id,
            json!({"username": "kept_ep", "password": "passw0rd"}),
        )
        .await;
    let cascaded_endpoint = api
        .create_endpoint(
            &cascaded,
            &cascaded.auth_id,
            json!({"username": "gone_ep", "password": "passw0rd"}),
        )
        .await;

    let path = |auth_id: &str| format!("/api/v1/accounts/{}/sub-accounts/{auth_id}", main.auth_id);
    let deleted = api.delete(&path(&kept.auth_id), main).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.json["message"], "Sub-account deleted successfully");
    let moved = api
        .get(
            &api.account_path(&main.auth_id, &format!("Endpoint/{kept_endpoint}/")),
            main,
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    assert_eq!(
        moved.json["sub_account"],
        Value::Null,
        "re-parented to the main account"
    );

    let cascade = api
        .delete(&format!("{}?cascade=true", path(&cascaded.auth_id)), main)
        .await;
    assert_eq!(cascade.status, StatusCode::OK, "{}", cascade.text);
    let gone = api
        .get(
            &api.account_path(&main.auth_id, &format!("Endpoint/{cascaded_endpoint}/")),
            main,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);

    // Deleted credentials stop working; the sub-account is gone.
    let old = api
        .get(&api.account_path(&kept.auth_id, "Endpoint/"), &kept)
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let again = api.delete(&path(&kept.auth_id), main).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.error(), "Sub-account not found");
}

#[tokio::test]
async fn only_a_main_account_manages_only_its_own_sub_accounts() {
    let api = start().await;
    let main = &api.main;
    let (_, child) = create_sub_account(&api, json!({"name": "child"})).await;
    let (_, other_main) = create_account(&api.store, "Other", None).await;

    // A sub-account cannot manage sub-accounts, not even through its own path.
    let own = api.get(&sub_accounts_path(&child.auth_id), &child).await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "{}", own.text);
    let parent_path = api.get(&sub_accounts_path(&main.auth_id), &child).await;
    assert_eq!(
        parent_path.status,
        StatusCode::NOT_FOUND,
        "{}",
        parent_path.text
    );

    // Another main account: its path is a 404 identical to a nonexistent one.
    let foreign = api.get(&sub_accounts_path(&other_main.auth_id), main).await;
    let nonexistent = api.get(&sub_accounts_path("MA_NOTEXIST"), main).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert_eq!(nonexistent.status, StatusCode::NOT_FOUND);
    assert_eq!(foreign.error(), nonexistent.error());

    // Another main account cannot reach this one's child through its own path either.
    let stolen = api
        .get(
            &format!(
                "/api/v1/accounts/{}/sub-accounts/{}",
                other_main.auth_id, child.auth_id
            ),
            &other_main,
        )
        .await;
    assert_eq!(stolen.status, StatusCode::NOT_FOUND);
    assert_eq!(stolen.error(), "Sub-account not found");
    let updated = api
        .put(
            &format!(
                "/api/v1/accounts/{}/sub-accounts/{}",
                other_main.auth_id, child.auth_id
            ),
            &other_main,
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn children_are_isolated_and_the_parent_sees_and_acts_for_them() {
    let api = start().await;
    let main = &api.main;
    let (child_a, a) = create_account(&api.store, "A", Some(api.main_account.id)).await;
    let (_, b) = create_account(&api.store, "B", Some(api.main_account.id)).await;
    let password = "passw0rd1";
    let parent_endpoint = api
        .create_endpoint(
            main,
            &main.auth_id,
            json!({"username": "parent_ep", "password": password}),
        )
        .await;
    let a_endpoint = api
        .create_endpoint(
            &a,
            &a.auth_id,
            json!({"username": "a_ep", "password": password}),
        )
        .await;
    let b_endpoint = api
        .create_endpoint(
            &b,
            &b.auth_id,
            json!({"username": "b_ep", "password": password}),
        )
        .await;
    let parent_app = api
        .create_app(
            main,
            &main.auth_id,
            json!({"app_name": "parent", "answer_url": "https://p.example/"}),
        )
        .await;
    let a_app = api
        .create_app(
            &a,
            &a.auth_id,
            json!({"app_name": "a", "answer_url": "https://a.example/"}),
        )
        .await;

    // A child sees only its own resources.
    let list = api
        .get(&api.account_path(&a.auth_id, "Endpoint/"), &a)
        .await
        .json;
    assert_eq!(list["meta"]["total_count"], 1);
    assert_eq!(list["objects"][0]["username"], "a_ep");
    assert_eq!(list["objects"][0]["sub_account"], a.auth_id.as_str());
    assert_eq!(
        list["objects"][0]["resource_uri"],
        format!("/v1/Account/{}/Endpoint/{a_endpoint}/", a.auth_id)
    );
    for foreign in [&parent_endpoint, &b_endpoint] {
        let path = api.account_path(&a.auth_id, &format!("Endpoint/{foreign}/"));
        let got = api.get(&path, &a).await;
        assert_eq!(got.status, StatusCode::NOT_FOUND);
        assert_eq!(got.error(), "Endpoint not found");
        assert_eq!(got.json["endpoint_id"], foreign.as_str());
        assert_eq!(
            api.post(&path, &a, json!({"alias": "x"})).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(api.delete(&path, &a).await.status, StatusCode::NOT_FOUND);
    }
    let parent_app_path = api.account_path(&a.auth_id, &format!("Application/{parent_app}/"));
    let app = api.get(&parent_app_path, &a).await;
    assert_eq!(app.status, StatusCode::NOT_FOUND);
    assert_eq!(app.error(), "Application not found");
    assert_eq!(app.json["app_id"], parent_app.as_str());
    // ... cannot bind a parent's app, nor create for a sibling.
    let bind = api
        .post(
            &api.account_path(&a.auth_id, &format!("Endpoint/{a_endpoint}/")),
            &a,
            json!({"app_id": parent_app}),
        )
        .await;
    assert_eq!(bind.status, StatusCode::BAD_REQUEST);
    let sibling = api
        .post(
            &api.account_path(&a.auth_id, "Endpoint/"),
            &a,
            json!({"username": "x_ep", "password": password, "sub_account": b.auth_id}),
        )
        .await;
    assert_eq!(sibling.status, StatusCode::BAD_REQUEST);
    assert!(!sibling.detail("sub_account").is_empty());
    // ... and cannot use the parent's or a sibling's path: same 404 as a nonexistent account.
    let via_parent = api
        .get(&api.account_path(&main.auth_id, "Endpoint/"), &a)
        .await;
    let via_sibling = api
        .get(&api.account_path(&b.auth_id, "Endpoint/"), &a)
        .await;
    let via_nothing = api
        .get(&api.account_path("SA_NOTEXIST", "Endpoint/"), &a)
        .await;
    for reply in [&via_parent, &via_sibling, &via_nothing] {
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
        assert_eq!(reply.error(), "Account not found");
    }

    // The parent sees everything of the family on its own path.
    let all = api
        .get(&api.account_path(&main.auth_id, "Endpoint/"), main)
        .await
        .json;
    assert_eq!(all["meta"]["total_count"], 3);
    let apps = api
        .get(&api.account_path(&main.auth_id, "Application/"), main)
        .await
        .json;
    assert_eq!(apps["meta"]["total_count"], 2);
    let child_ep = api
        .get(
            &api.account_path(&main.auth_id, &format!("Endpoint/{a_endpoint}/")),
            main,
        )
        .await;
    assert_eq!(child_ep.status, StatusCode::OK);
    assert_eq!(child_ep.json["sub_account"], a.auth_id.as_str());

    // On a child's path the parent acts within that child.
    let on_child = api
        .get(&api.account_path(&a.auth_id, "Endpoint/"), main)
        .await
        .json;
    assert_eq!(on_child["meta"]["total_count"], 1);
    assert_eq!(
        on_child["meta"]["total_count"], 1,
        "the child's path does not show the parent's own endpoints"
    );
    let created = api
        .create_endpoint(
            main,
            &a.auth_id,
            json!({"username": "made_by_parent", "password": password}),
        )
        .await;
    let made = api
        .get(
            &api.account_path(&a.auth_id, &format!("Endpoint/{created}/")),
            &a,
        )
        .await;
    assert_eq!(made.status, StatusCode::OK);
    assert_eq!(made.json["sub_account"], a.auth_id.as_str());
    let parent_on_child_path = api
        .get(
            &api.account_path(&a.auth_id, &format!("Endpoint/{parent_endpoint}/")),
            main,
        )
        .await;
    assert_eq!(parent_on_child_path.status, StatusCode::NOT_FOUND);

    // The parent creates for a child through `sub_account` in the body.
    let via_body = api
        .post(
            &api.account_path(&main.auth_id, "Endpoint/"),
            main,
            json!({"username": "for_b", "password": password, "sub_account": b.auth_id}),
        )
        .await;
    assert_eq!(via_body.status, StatusCode::CREATED, "{}", via_body.text);
    assert_eq!(
        via_body.json["resource_uri"],
        format!(
            "/v1/Account/{}/Endpoint/{}/",
            b.auth_id,
            via_body.json["endpoint_id"].as_str().unwrap()
        )
    );
    let app_for_a = api
        .post(&api.account_path(&main.auth_id, "Application/"), main,
              json!({"app_name": "for_a", "answer_url": "https://a.example/", "sub_account": child_a.auth_id}))
        .await;
    assert_eq!(app_for_a.status, StatusCode::CREATED, "{}", app_for_a.text);
    let app_id = app_for_a.json["app_id"].as_str().unwrap();
    let seen_by_a = api
        .get(
            &api.account_path(&a.auth_id, &format!("Application/{app_id}/")),
            &a,
        )
        .await;
    assert_eq!(seen_by_a.status, StatusCode::OK);
    assert_eq!(seen_by_a.json["sub_account"], a.auth_id.as_str());
    let a_apps = api
        .get(
            &format!(
                "{}?sub_account={}",
                api.account_path(&main.auth_id, "Application/"),
                a.auth_id
            ),
            main,
        )
        .await
        .json;
    assert_eq!(a_apps["meta"]["total_count"], 2);
    assert!(a_apps["objects"]
        .as_array()
        .unwrap()
        .iter()
        .any(|object| object["app_id"] == a_app.as_str()));

    // A foreign main account sees none of it.
    let (_, stranger) = create_account(&api.store, "Stranger", None).await;
    let peek = api
        .get(
            &api.account_path(&stranger.auth_id, &format!("Endpoint/{a_endpoint}/")),
            &stranger,
        )
        .await;
    assert_eq!(peek.status, StatusCode::NOT_FOUND);
    let foreign_path = api
        .get(&api.account_path(&main.auth_id, "Endpoint/"), &stranger)
        .await;
    assert_eq!(foreign_path.status, StatusCode::NOT_FOUND);
}
