//! Application resource.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::start;

#[tokio::test]
async fn create_with_sdk_body_and_retrieve_every_field() {
    let api = start().await;
    let main = &api.main;
    // Exactly what vobiz-python 0.1.1 `applications.create(name, answer_url)` sends.
    let reply = api
        .post(
            &api.account_path(&main.auth_id, "Application/"),
            main,
            json!({"name": "Support Line", "answer_url": "https://app.example/answer",
                   "answer_method": "POST", "hangup_method": "POST", "fallback_method": "POST"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.json["message"], "created");
    assert!(reply.json["api_id"].is_string());
    let app_id = reply.json["app_id"].as_str().unwrap().to_owned();
    assert!(app_id.bytes().all(|b| b.is_ascii_digit()), "{app_id}");

    // The SDK retrieves without a trailing slash.
    let got = api
        .get(
            &api.account_path(&main.auth_id, &format!("Application/{app_id}")),
            main,
        )
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    let body = &got.json;
    let expected = json!({
        "app_id": app_id,
        "app_name": "Support Line",
        "answer_url": "https://app.example/answer",
        "answer_method": "POST",
        "hangup_url": "https://app.example/answer",
        "hangup_method": "POST",
        "fallback_answer_url": null,
        "fallback_method": "POST",
        "message_url": null,
        "message_method": "POST",
        "default_number_app": false,
        "default_endpoint_app": false,
        "sub_account": null,
        "application_type": "XML",
        "default_app": false,
        "enabled": true,
        "log_incoming_message": true,
        "public_uri": false,
        "sip_transfer_url": null,
        "sip_transfer_method": "POST",
        "sip_uri": format!("sip:{app_id}@app.vobiz.ai"),
        "resource_uri": format!("/v1/Account/{}/Application/{app_id}/", main.auth_id),
    });
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&body[key], value, "{key}");
    }
    assert!(body["api_id"].is_string());
    for stamp in ["created_at", "updated_at"] {
        let text = body[stamp].as_str().unwrap();
        chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z")
            .unwrap_or_else(|err| panic!("{stamp} {text}: {err}"));
    }
}

#[tokio::test]
async fn create_accepts_every_optional_field() {
    let api = start().await;
    let main = &api.main;
    let app_id = api
        .create_app(
            main,
            &main.auth_id,
            json!({"app_name": "full_app-1", "answer_url": "http://app.example:8080/a?x=1",
                   "answer_method": "get", "hangup_url": "https://h.example/h", "hangup_method": "GET",
                   "fallback_answer_url": "https://f.example/", "fallback_method": "GET",
                   "message_url": "https://m.example/", "message_method": "GET",
                   "default_number_app": true, "default_endpoint_app": "true", "application_type": "siptrunk",
                   "default_app": true, "enabled": false, "log_incoming_messages": false, "public_uri": true,
                   "sip_transfer_url": "https://t.example/", "sip_transfer_method": "GET",
                   "unknown_field": {"ignored": true}}),
        )
        .await;
    let body = api
        .get(
            &api.account_path(&main.auth_id, &format!("Application/{app_id}/")),
            main,
        )
        .await
        .json;
    assert_eq!(body["answer_method"], "GET");
    assert_eq!(body["hangup_url"], "https://h.example/h");
    assert_eq!(body["fallback_answer_url"], "https://f.example/");
    assert_eq!(body["message_url"], "https://m.example/");
    assert_eq!(body["default_number_app"], true);
    assert_eq!(body["default_endpoint_app"], true);
    assert_eq!(body["application_type"], "Siptrunk");
    assert_eq!(body["default_app"], true);
    assert_eq!(body["enabled"], false);
    assert_eq!(body["log_incoming_message"], false);
    assert_eq!(body["public_uri"], true);
    assert_eq!(body["sip_transfer_url"], "https://t.example/");
    assert_eq!(body["sip_transfer_method"], "GET");
}

#[tokio::test]
async fn create_validates_every_field() {
    let api = start().await;
    let main = &api.main;
    let path = api.account_path(&main.auth_id, "Application/");
    let url = "https://a.example/";
    let cases = [
        (json!({"answer_url": url}), "app_name"),
        (json!({"app_name": "", "answer_url": url}), "app_name"),
        (
            json!({"app_name": "bad/name", "answer_url": url}),
            "app_name",
        ),
        (
            json!({"app_name": "x".repeat(129), "answer_url": url}),
            "app_name",
        ),
        (json!({"app_name": "a"}), "answer_url"),
        (
            json!({"app_name": "a", "answer_url": "ftp://a.example/"}),
            "answer_url",
        ),
        (
            json!({"app_name": "a", "answer_url": "https://"}),
            "answer_url",
        ),
        (
            json!({"app_name": "a", "answer_url": "https://a.example:99999/"}),
            "answer_url",
        ),
        (
            json!({"app_name": "a", "answer_url": "not a url"}),
            "answer_url",
        ),
        (
            json!({"app_name": "a", "answer_url": url, "answer_method": "PUT"}),
            "answer_method",
        ),
        (
            json!({"app_name": "a", "answer_url": url, "hangup_method": "DELETE"}),
            "hangup_method",
        ),
        (
            json!({"app_name": "a", "answer_url": url, "hangup_url": "nope"}),
            "hangup_url",
        ),
        (
            json!({"app_name": "a", "answer_url": url, "fallback_answer_url": "x:"}),
            "fallback_answer_url",
        ),
        (
            json!({"app_name": "a", "answer_url": url, "message_url": "mailto:a@b"}),
            "message_url",
        ),
        (
            json!({"app_name": "a", "answer_url": url, "application_type": "SOAP"}),
            "application_type",
        ),
        (
            json!({"app_name": "a", "answer_url": url, "enabled": "perhaps"}),
            "enabled",
        ),
        (json!({"app_name": "a", "answer_url": 7}), "answer_url"),
        (
            json!({"app_name": "a", "answer_url": url, "sub_account": "SA_NOTMINE1"}),
            "sub_account",
        ),
    ];
    for (body, field) in cases {
        let reply = api.post(&path, main, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text
        );
        assert!(!reply.detail(field).is_empty(), "{body}");
    }
    let missing = api.post(&path, main, json!({})).await;
    assert_eq!(missing.detail("app_name"), "This field is required");
    assert_eq!(missing.detail("answer_url"), "This field is required");
}

#[tokio::test]
async fn update_is_partial_replies_200_changed_and_validates() {
    let api = start().await;
    let main = &api.main;
    let app_id = api
        .create_app(
            main,
            &main.auth_id,
            json!({"app_name": "before", "answer_url": "https://a.example/", "fallback_answer_url": "https://f.example/"}),
        )
        .await;
    let path = api.account_path(&main.auth_id, &format!("Application/{app_id}/"));
    let reply = api
        .post(
            &path,
            main,
            json!({"name": "after", "answer_method": "GET", "fallback_answer_url": null,
                                   "message_url": "https://m.example/", "enabled": false}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["message"], "changed");
    assert!(reply.json["api_id"].is_string());
    let body = api.get(&path, main).await.json;
    assert_eq!(body["app_name"], "after");
    assert_eq!(body["answer_method"], "GET");
    assert_eq!(body["fallback_answer_url"], Value::Null);
    assert_eq!(body["message_url"], "https://m.example/");
    assert_eq!(body["enabled"], false);
    assert_eq!(body["answer_url"], "https://a.example/", "unchanged");

    for (body, field) in [
        (json!({"answer_url": "nope"}), "answer_url"),
        (json!({"app_name": "bad|name"}), "app_name"),
        (json!({"hangup_method": "PATCH"}), "hangup_method"),
        (json!({"hangup_url": "ftp://x"}), "hangup_url"),
        (json!({"application_type": "other"}), "application_type"),
        (json!({"public_uri": 3}), "public_uri"),
    ] {
        let reply = api.post(&path, main, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text
        );
        assert!(!reply.detail(field).is_empty());
    }

    let missing = api
        .post(
            &api.account_path(&main.auth_id, "Application/12345678901234567/"),
            main,
            json!({}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error(), "Application not found");
    assert_eq!(missing.json["app_id"], "12345678901234567");
}

#[tokio::test]
async fn delete_replies_204_and_unbinds_endpoints() {
    let api = start().await;
    let main = &api.main;
    let app_id = api
        .create_app(
            main,
            &main.auth_id,
            json!({"app_name": "gone", "answer_url": "https://a.example/"}),
        )
        .await;
    let endpoint = api
        .create_endpoint(
            main,
            &main.auth_id,
            json!({"username": "bound", "password": "passw0rd!", "app_id": app_id}),
        )
        .await;
    // The SDK deletes without a trailing slash.
    let deleted = api
        .delete(
            &api.account_path(&main.auth_id, &format!("Application/{app_id}")),
            main,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert_eq!(deleted.text, "");
    let gone = api
        .get(
            &api.account_path(&main.auth_id, &format!("Application/{app_id}/")),
            main,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error(), "Application not found");
    let again = api
        .delete(
            &api.account_path(&main.auth_id, &format!("Application/{app_id}/")),
            main,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let bound = api
        .get(
            &api.account_path(&main.auth_id, &format!("Endpoint/{endpoint}/")),
            main,
        )
        .await;
    assert_eq!(bound.json["application"], Value::Null);
}

#[tokio::test]
async fn list_paginates_with_limit_offset_and_the_sdk_page_size() {
    let api = start().await;
    let main = &api.main;
    for n in 0..7 {
        api.create_app(
            main,
            &main.auth_id,
            json!({"app_name": format!("app{n}"), "answer_url": "https://a.example/"}),
        )
        .await;
    }
    let base = api.account_path(&main.auth_id, "Application/");
    let first = api.get(&base, main).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.json["meta"]["total_count"], 7);
    assert_eq!(first.json["meta"]["limit"], 20);
    assert_eq!(first.json["meta"]["next"], Value::Null);
    assert_eq!(first.json["objects"].as_array().unwrap().len(), 7);
    assert_eq!(first.json["objects"][0]["app_name"], "app6", "newest first");

    let page = api
        .get(&format!("{base}?limit=3&offset=3"), main)
        .await
        .json;
    assert_eq!(page["objects"].as_array().unwrap().len(), 3);
    assert_eq!(
        page["meta"]["next"],
        format!("/v1/Account/{}/Application/?limit=3&offset=6", main.auth_id)
    );
    assert_eq!(
        page["meta"]["previous"],
        format!("/v1/Account/{}/Application/?limit=3&offset=0", main.auth_id)
    );

    // vobiz-python sends `page` (1-based) and `size`.
    let sdk = api.get(&format!("{base}?page=3&size=3"), main).await.json;
    assert_eq!(sdk["meta"]["offset"], 6);
    assert_eq!(sdk["meta"]["limit"], 3);
    assert_eq!(sdk["objects"].as_array().unwrap().len(), 1);
    assert_eq!(sdk["objects"][0]["app_name"], "app0");

    let clamped = api.get(&format!("{base}?size=1000"), main).await.json;
    assert_eq!(clamped["meta"]["limit"], 100);

    let filtered = api
        .get(&format!("{base}?app_name__exact=app3"), main)
        .await
        .json;
    assert_eq!(filtered["meta"]["total_count"], 1);
    let contains = api
        .get(&format!("{base}?app_name__contains=app"), main)
        .await
        .json;
    assert_eq!(contains["meta"]["total_count"], 7);
    // vobiz-python's `applications.list()` filters by type.
    let xml = api
        .get(&format!("{base}?application_type=XML&limit=5"), main)
        .await
        .json;
    assert_eq!(xml["meta"]["total_count"], 7);
    assert_eq!(
        xml["meta"]["next"],
        format!(
            "/v1/Account/{}/Application/?limit=5&offset=5&application_type=XML",
            main.auth_id
        )
    );
    let trunks = api
        .get(&format!("{base}?application_type=Siptrunk"), main)
        .await
        .json;
    assert_eq!(trunks["meta"]["total_count"], 0);

    for query in ["page=0", "size=-3", "limit=x", "offset=1.5"] {
        let reply = api.get(&format!("{base}?{query}"), main).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.text
        );
        assert_eq!(reply.error(), "invalid request parameters");
    }
}
