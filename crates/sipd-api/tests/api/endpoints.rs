//! Endpoint resource: create, retrieve, update, delete, list, filters, registrations.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sipd_store::{Binding, Scope};

use crate::common::{start, TestApi, SIP_DOMAIN};

const PASSWORD: &str = "s3cretPass";

fn endpoint_body(username: &str) -> Value {
    json!({"username": username, "password": PASSWORD, "alias": format!("{username} desk")})
}

#[tokio::test]
async fn create_replies_201_with_the_union_shape_and_keeps_the_username() {
    let api = start().await;
    let main = &api.main;
    let reply = api
        .post(
            &api.account_path(&main.auth_id, "Endpoint/"),
            main,
            endpoint_body("front_desk.1"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let body = &reply.json;
    let endpoint_id = body["endpoint_id"].as_str().unwrap();
    assert!(
        endpoint_id.bytes().all(|b| b.is_ascii_digit()),
        "{endpoint_id}"
    );
    assert!(body["api_id"].is_string());
    assert_eq!(body["message"], "created");
    assert_eq!(body["alias"], "front_desk.1 desk");
    assert_eq!(body["username"], "front_desk.1");
    assert_eq!(body["sip_uri"], format!("sip:front_desk.1@{SIP_DOMAIN}"));
    assert_eq!(
        body["resource_uri"],
        format!("/v1/Account/{}/Endpoint/{endpoint_id}/", main.auth_id)
    );
    assert!(body.get("password").is_none());
}

#[tokio::test]
async fn retrieve_shows_every_field_with_defaults_and_no_password() {
    let api = start().await;
    let main = &api.main;
    let id = api
        .create_endpoint(
            main,
            &main.auth_id,
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    let reply = api
        .get(
            &api.account_path(&main.auth_id, &format!("Endpoint/{id}/")),
            main,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = &reply.json;
    assert!(body["api_id"].is_string());
    assert_eq!(body["alias"], "alice", "alias defaults to the username");
    assert_eq!(body["application"], Value::Null);
    assert_eq!(body["endpoint_id"], id.as_str());
    assert_eq!(
        body["resource_uri"],
        format!("/v1/Account/{}/Endpoint/{id}/", main.auth_id)
    );
    assert_eq!(body["sip_registered"], "false");
    assert_eq!(body["sip_uri"], format!("sip:alice@{SIP_DOMAIN}"));
    assert_eq!(body["sub_account"], Value::Null);
    assert_eq!(body["username"], "alice");
    for (flag, default) in [
        ("allow_voice", true),
        ("allow_message", true),
        ("allow_video", false),
        ("allow_same_domain", true),
        ("allow_other_domains", false),
        ("allow_phones", true),
        ("allow_apps", true),
    ] {
        assert_eq!(body[flag], default, "{flag}");
    }
    for unregistered in ["sip_contact", "sip_expires", "sip_user_agent"] {
        assert_eq!(body[unregistered], Value::Null, "{unregistered}");
        assert!(
            body.get(unregistered).is_some(),
            "{unregistered} must be present"
        );
    }
    assert!(body.get("sip_registration").is_none());
    assert!(body.get("password").is_none());
    for stamp in ["created_at", "updated_at"] {
        let text = body[stamp].as_str().unwrap();
        assert!(text.ends_with('Z') && text.contains('T'), "{stamp}: {text}");
        chrono::DateTime::parse_from_rfc3339(text).expect("ISO-8601");
    }
}

#[tokio::test]
async fn create_honours_explicit_flags() {
    let api = start().await;
    let main = &api.main;
    let id = api
        .create_endpoint(
            main,
            &main.auth_id,
            json!({"username": "flags", "password": PASSWORD, "allow_video": true,
                   "allow_voice": "false", "allow_other_domains": true, "allow_apps": false}),
        )
        .await;
    let body = api
        .get(
            &api.account_path(&main.auth_id, &format!("Endpoint/{id}/")),
            main,
        )
        .await
        .json;
    assert_eq!(body["allow_video"], true);
    assert_eq!(body["allow_voice"], false);
    assert_eq!(body["allow_other_domains"], true);
    assert_eq!(body["allow_apps"], false);
}

async fn create_error(api: &TestApi, body: Value) -> crate::common::Reply {
    let reply = api
        .post(
            &api.account_path(&api.main.auth_id, "Endpoint/"),
            &api.main,
            body,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    reply
}

#[tokio::test]
async fn create_validates_every_field() {
    let api = start().await;
    let cases = [
        (json!({"password": PASSWORD}), "username"),
        (json!({"username": "", "password": PASSWORD}), "username"),
        (
            json!({"username": "has space", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "semi;colon", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "u".repeat(65), "password": PASSWORD}),
            "username",
        ),
        (json!({"username": 42, "password": PASSWORD}), "username"),
        (json!({"username": "bob"}), "password"),
        (json!({"username": "bob", "password": "sh0rt"}), "password"),
        (
            json!({"username": "bob", "password": "onlyletters"}),
            "password",
        ),
        (
            json!({"username": "bob", "password": "1234567890"}),
            "password",
        ),
        (
            json!({"username": "bob12345", "password": "bob12345"}),
            "password",
        ),
        (
            json!({"username": "bob", "password": PASSWORD, "alias": ""}),
            "alias",
        ),
        (
            json!({"username": "bob", "password": PASSWORD, "alias": "a".repeat(129)}),
            "alias",
        ),
        (
            json!({"username": "bob", "password": PASSWORD, "alias": "tab\there"}),
            "alias",
        ),
        (
            json!({"username": "bob", "password": PASSWORD, "application": "abc"}),
            "application",
        ),
        (
            json!({"username": "bob", "password": PASSWORD, "application": "999"}),
            "application",
        ),
        (
            json!({"username": "bob", "password": PASSWORD, "app_id": 999}),
            "app_id",
        ),
        (
            json!({"username": "bob", "password": PASSWORD, "allow_voice": "maybe"}),
            "allow_voice",
        ),
        (
            json!({"username": "bob", "password": PASSWORD, "sub_account": "SA_NOPE0000"}),
            "sub_account",
        ),
    ];
    for (body, field) in cases {
        let reply = create_error(&api, body.clone()).await;
        assert!(!reply.detail(field).is_empty(), "{body}: {}", reply.text);
    }
    let short = create_error(&api, json!({"username": "bob", "password": "sh0rt"})).await;
    assert_eq!(
        short.detail("password"),
        "Password must be at least 8 characters"
    );
    // Nothing was created by the rejected requests.
    let list = api
        .get(&api.account_path(&api.main.auth_id, "Endpoint/"), &api.main)
        .await;
    assert_eq!(list.json["meta"]["total_count"], 0);
}

#[tokio::test]
async fn duplicate_username_is_409_across_the_whole_domain() {
    let api = start().await;
    let main = &api.main;
    api.create_endpoint(main, &main.auth_id, endpoint_body("taken"))
        .await;
    let again = api
        .post(
            &api.account_path(&main.auth_id, "Endpoint/"),
            main,
            endpoint_body("taken"),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert_eq!(again.error(), "username already exists");
    assert_eq!(again.json["username"], "taken");

    let (_, other) = crate::common::create_account(&api.store, "Other", None).await;
    let elsewhere = api
        .post(
            &api.account_path(&other.auth_id, "Endpoint/"),
            &other,
            endpoint_body("taken"),
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::CONFLICT, "{}", elsewhere.text);
}

#[tokio::test]
async fn default_endpoint_app_binds_new_endpoints_without_an_application() {
    let api = start().await;
    let main = &api.main;
    let plain = api
        .create_app(
            main,
            &main.auth_id,
            json!({"app_name": "plain", "answer_url": "https://a.example/answer"}),
        )
        .await;
    let default = api
        .create_app(
            main,
            &main.auth_id,
            json!({"app_name": "default", "answer_url": "https://a.example/answer", "default_endpoint_app": true}),
        )
        .await;
    let default_uri = format!("/v1/Account/{}/Application/{default}/", main.auth_id);
    let plain_uri = format!("/v1/Account/{}/Application/{plain}/", main.auth_id);

    let cases = [
        (
            json!({"username": "implicit", "password": PASSWORD}),
            &default_uri,
        ),
        (
            json!({"username": "nulled", "password": PASSWORD, "application": null}),
            &default_uri,
        ),
        (
            json!({"username": "as_int", "password": PASSWORD, "application": plain.parse::<u64>().unwrap()}),
            &plain_uri,
        ),
        (
            json!({"username": "as_text", "password": PASSWORD, "application": plain}),
            &plain_uri,
        ),
        (
            json!({"username": "via_app_id", "password": PASSWORD, "app_id": plain}),
            &plain_uri,
        ),
    ];
    for (body, expected) in cases {
        let id = api.create_endpoint(main, &main.auth_id, body.clone()).await;
        let got = api
            .get(
                &api.account_path(&main.auth_id, &format!("Endpoint/{id}/")),
                main,
            )
            .await;
        assert_eq!(&got.json["application"], expected.as_str(), "{body}");
    }
}

#[tokio::test]
async fn update_is_partial_and_replies_202_changed() {
    let api = start().await;
    let main = &api.main;
    let app = api
        .create_app(
            main,
            &main.auth_id,
            json!({"app_name": "app", "answer_url": "http://a.example/x"}),
        )
        .await;
    let id = api
        .create_endpoint(main, &main.auth_id, endpoint_body("carol"))
        .await;
    let path = api.account_path(&main.auth_id, &format!("Endpoint/{id}/"));

    let reply = api
        .post(
            &path,
            main,
            json!({"alias": "Carol's phone", "app_id": app, "allow_video": true,
                                   "username": "ignored", "allow_apps": false}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_eq!(reply.json["message"], "changed");
    assert!(reply.json["api_id"].is_string());
    let body = api.get(&path, main).await.json;
    assert_eq!(body["alias"], "Carol's phone");
    assert_eq!(
        body["application"],
        format!("/v1/Account/{}/Application/{app}/", main.auth_id)
    );
    assert_eq!(body["allow_video"], true);
    assert_eq!(body["username"], "carol", "username is locked (ignored)");
    assert_eq!(body["allow_apps"], true, "allow_apps is locked (ignored)");
    assert_eq!(body["allow_voice"], true, "omitted fields are unchanged");

    let unbind = api.post(&path, main, json!({"application": null})).await;
    assert_eq!(unbind.status, StatusCode::ACCEPTED, "{}", unbind.text);
    assert_eq!(api.get(&path, main).await.json["application"], Value::Null);

    let rebind = api
        .post(
            &path,
            main,
            json!({"application": app.parse::<u64>().unwrap()}),
        )
        .await;
    assert_eq!(rebind.status, StatusCode::ACCEPTED, "{}", rebind.text);
    assert!(api.get(&path, main).await.json["application"].is_string());

    let empty = api.post(&path, main, json!({})).await;
    assert_eq!(empty.status, StatusCode::ACCEPTED, "{}", empty.text);
}

#[tokio::test]
async fn update_validates_and_404s() {
    let api = start().await;
    let main = &api.main;
    let id = api
        .create_endpoint(main, &main.auth_id, endpoint_body("dave"))
        .await;
    let path = api.account_path(&main.auth_id, &format!("Endpoint/{id}/"));
    let cases = [
        (json!({"password": "short1"}), "password"),
        (json!({"password": "dave"}), "password"),
        (json!({"alias": ""}), "alias"),
        (json!({"application": "12345"}), "application"),
        (json!({"app_id": "x1"}), "app_id"),
        (json!({"allow_voice": []}), "allow_voice"),
    ];
    for (body, field) in cases {
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
            &api.account_path(&main.auth_id, "Endpoint/999999999999999/"),
            main,
            json!({"alias": "x"}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);
    assert_eq!(missing.error(), "Endpoint not found");
    assert_eq!(missing.json["endpoint_id"], "999999999999999");
}

fn binding(endpoint_pk: i64) -> Binding {
    let now_ms = chrono::Utc::now().timestamp_millis();
    Binding {
        endpoint_pk,
        contact_uri: "sip:erin@192.0.2.10:5062;transport=udp".to_owned(),
        expires_at_ms: now_ms + 3_600_000,
        q: None,
        call_id: "call-1@192.0.2.10".to_owned(),
        cseq: 1,
        user_agent: Some("Zoiper v5.4.5".to_owned()),
        received: "192.0.2.10:5062".to_owned(),
        transport: "udp".to_owned(),
        flow_id: None,
        instance_id: None,
        reg_id: None,
        path: None,
        node_id: "node-1".to_owned(),
        updated_at_ms: now_ms,
    }
}

#[tokio::test]
async fn registered_endpoint_shows_registration_and_a_password_change_drops_it() {
    let api = start().await;
    let main = &api.main;
    let id = api
        .create_endpoint(main, &main.auth_id, endpoint_body("erin"))
        .await;
    let endpoint = api
        .store
        .get_endpoint(Scope::Family(api.main_account.id), &id)
        .await
        .unwrap()
        .unwrap();
    api.store
        .upsert_binding(&binding(endpoint.id))
        .await
        .unwrap();

    let path = api.account_path(&main.auth_id, &format!("Endpoint/{id}/"));
    let body = api.get(&path, main).await.json;
    assert_eq!(body["sip_registered"], "true");
    assert_eq!(
        body["sip_contact"],
        "sip:erin@192.0.2.10:5062;transport=udp"
    );
    assert_eq!(body["sip_user_agent"], "Zoiper v5.4.5");
    let expires = body["sip_expires"].as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(expires).expect("ISO-8601 sip_expires");
    let registration = &body["sip_registration"];
    assert_eq!(registration["contact"], body["sip_contact"]);
    assert_eq!(registration["expires"], expires);
    assert_eq!(registration["user_agent"], "Zoiper v5.4.5");
    assert_eq!(registration["received"], "192.0.2.10:5062");
    assert_eq!(registration["path"], Value::Null);

    // The list shows the registration fields but never `sip_registration`.
    let listed = api
        .get(&api.account_path(&main.auth_id, "Endpoint/"), main)
        .await
        .json;
    assert_eq!(listed["objects"][0]["sip_registered"], "true");
    assert!(listed["objects"][0].get("sip_registration").is_none());

    // An alias change keeps the registration; a password change drops it.
    api.post(&path, main, json!({"alias": "Erin"})).await;
    assert_eq!(api.get(&path, main).await.json["sip_registered"], "true");
    let changed = api
        .post(&path, main, json!({"password": "n3wPassword"}))
        .await;
    assert_eq!(changed.status, StatusCode::ACCEPTED, "{}", changed.text);
    let body = api.get(&path, main).await.json;
    assert_eq!(body["sip_registered"], "false");
    assert_eq!(body["sip_contact"], Value::Null);
    assert!(body.get("sip_registration").is_none());
}

#[tokio::test]
async fn delete_replies_204_empty_then_404() {
    let api = start().await;
    let main = &api.main;
    let id = api
        .create_endpoint(main, &main.auth_id, endpoint_body("frank"))
        .await;
    let path = api.account_path(&main.auth_id, &format!("Endpoint/{id}/"));
    let deleted = api.delete(&path, main).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(deleted.text, "");
    let gone = api.get(&path, main).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error(), "Endpoint not found");
    assert_eq!(gone.json["endpoint_id"], id.as_str());
    assert_eq!(api.delete(&path, main).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn list_paginates_with_limit_offset_and_page_size() {
    let api = start().await;
    let main = &api.main;
    for n in 0..25 {
        api.create_endpoint(main, &main.auth_id, endpoint_body(&format!("user{n:02}")))
            .await;
    }
    let base = api.account_path(&main.auth_id, "Endpoint/");
    let link = |query: &str| format!("/v1/Account/{}/Endpoint/?{query}", main.auth_id);

    let first = api.get(&base, main).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert!(first.json["api_id"].is_string());
    let meta = &first.json["meta"];
    assert_eq!(meta["limit"], 20);
    assert_eq!(meta["offset"], 0);
    assert_eq!(meta["total_count"], 25);
    assert_eq!(meta["next"], link("limit=20&offset=20"));
    assert_eq!(meta["previous"], Value::Null);
    let objects = first.json["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 20);
    assert_eq!(objects[0]["username"], "user24", "newest first");
    assert!(objects[0].get("api_id").is_none());

    let last = api
        .get(&format!("{base}?limit=20&offset=20"), main)
        .await
        .json;
    assert_eq!(last["objects"].as_array().unwrap().len(), 5);
    assert_eq!(last["meta"]["next"], Value::Null);
    assert_eq!(last["meta"]["previous"], link("limit=20&offset=0"));

    let middle = api
        .get(&format!("{base}?limit=5&offset=7"), main)
        .await
        .json;
    assert_eq!(middle["meta"]["next"], link("limit=5&offset=12"));
    assert_eq!(middle["meta"]["previous"], link("limit=5&offset=2"));

    // page/size are aliases: page 2 of size 10 starts at offset 10.
    let paged = api.get(&format!("{base}?page=2&size=10"), main).await.json;
    assert_eq!(paged["meta"]["limit"], 10);
    assert_eq!(paged["meta"]["offset"], 10);
    assert_eq!(paged["objects"][0]["username"], "user14");

    // Limits above 100 are clamped.
    let clamped = api.get(&format!("{base}?limit=500"), main).await.json;
    assert_eq!(clamped["meta"]["limit"], 100);
    assert_eq!(clamped["objects"].as_array().unwrap().len(), 25);

    // Past the end: empty objects (the SDK iterator's stop condition).
    let beyond = api.get(&format!("{base}?offset=40"), main).await.json;
    assert_eq!(beyond["objects"], json!([]));
    assert_eq!(beyond["meta"]["total_count"], 25);

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("offset=-1", "offset"),
        ("size=0", "size"),
        ("page=0", "page"),
        ("application_id__isnull=maybe", "application_id__isnull"),
        ("application_id__exact=abc", "application_id__exact"),
    ] {
        let reply = api.get(&format!("{base}?{query}"), main).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.text
        );
        assert!(!reply.detail(field).is_empty(), "{query}");
    }
}

/// Usernames of a list reply, sorted.
fn usernames(body: &Value) -> Vec<String> {
    let mut names: Vec<String> = body["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|object| object["username"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn list_applies_every_filter_and_keeps_filters_in_links() {
    let api = start().await;
    let main = &api.main;
    let (child, child_creds) =
        crate::common::create_account(&api.store, "Child", Some(api.main_account.id)).await;
    let app = api
        .create_app(
            main,
            &main.auth_id,
            json!({"app_name": "app", "answer_url": "https://a.example/"}),
        )
        .await;
    for (username, alias, bound) in [
        ("sales_anna", "Anna Sales", true),
        ("sales_ben", "Ben", false),
        ("support_cat", "Cat Support", true),
        ("anna_dev", "Dev", false),
    ] {
        let mut body = json!({"username": username, "password": PASSWORD, "alias": alias});
        if bound {
            body["application"] = json!(app);
        }
        api.create_endpoint(main, &main.auth_id, body).await;
    }
    api.create_endpoint(&child_creds, &child.auth_id, endpoint_body("child_one"))
        .await;

    let base = api.account_path(&main.auth_id, "Endpoint/");
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "username__contains=anna".into(),
            vec!["anna_dev", "sales_anna"],
        ),
        ("username__exact=sales_ben".into(), vec!["sales_ben"]),
        ("username__exact=sales".into(), vec![]),
        (
            "username__startswith=sales_".into(),
            vec!["sales_anna", "sales_ben"],
        ),
        ("alias__contains=Support".into(), vec!["support_cat"]),
        ("alias__exact=Ben".into(), vec!["sales_ben"]),
        (
            format!("application_id__exact={app}"),
            vec!["sales_anna", "support_cat"],
        ),
        (
            "application_id__isnull=true".into(),
            vec!["anna_dev", "child_one", "sales_ben"],
        ),
        (
            "application_id__isnull=True".into(),
            vec!["anna_dev", "child_one", "sales_ben"],
        ),
        (
            "application_id__isnull=false".into(),
            vec!["sales_anna", "support_cat"],
        ),
        (format!("sub_account={}", child.auth_id), vec!["child_one"]),
        (
            format!("sub_account={}", main.auth_id),
            vec!["anna_dev", "sales_anna", "sales_ben", "support_cat"],
        ),
        ("sub_account=SA_UNKNOWN1".into(), vec![]),
        (
            "username__startswith=sales_&alias__contains=Anna".into(),
            vec!["sales_anna"],
        ),
    ];
    for (query, expected) in cases {
        let reply = api.get(&format!("{base}?{query}"), main).await;
        assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.text);
        assert_eq!(usernames(&reply.json), expected, "{query}");
        assert_eq!(reply.json["meta"]["total_count"], expected.len(), "{query}");
    }

    let linked = api
        .get(
            &format!("{base}?limit=1&username__startswith=s&application_id__isnull=false"),
            main,
        )
        .await
        .json;
    assert_eq!(
        linked["meta"]["next"],
        format!(
            "/v1/Account/{}/Endpoint/?limit=1&offset=1&username__startswith=s&application_id__isnull=false",
            main.auth_id
        )
    );
}
