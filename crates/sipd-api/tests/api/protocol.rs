//! Authentication, error bodies, routing details, health and the OpenAPI document.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;

use crate::common::{start, Creds};

#[tokio::test]
async fn missing_or_wrong_credentials_are_401_json() {
    let api = start().await;
    let path = api.account_path(&api.main.auth_id, "Endpoint/");
    let missing = api.send(Method::GET, &path, None, None).await;
    let wrong_token = Creds {
        auth_id: api.main.auth_id.clone(),
        auth_token: "wrong".into(),
    };
    let unknown_id = Creds {
        auth_id: "MA_NOBODY00".into(),
        auth_token: api.main.auth_token.clone(),
    };
    let huge = Creds {
        auth_id: "MA_".repeat(100),
        auth_token: "x".repeat(10_000),
    };
    let wrong = api.get(&path, &wrong_token).await;
    let unknown = api.get(&path, &unknown_id).await;
    let oversized = api.get(&path, &huge).await;
    for reply in [&missing, &wrong, &unknown, &oversized] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
        assert_eq!(reply.error(), "invalid credentials");
    }
    // Only the token header: still 401.
    let half = api
        .client
        .get(api.url(&path))
        .header("X-Auth-Token", &api.main.auth_token)
        .send()
        .await
        .unwrap();
    assert_eq!(half.status(), StatusCode::UNAUTHORIZED);
    // Credentials are checked before the body is looked at.
    let unauthenticated_post = api
        .send(
            Method::POST,
            &path,
            Some(&wrong_token),
            Some(&json!({"username": 1})),
        )
        .await;
    assert_eq!(unauthenticated_post.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn foreign_and_nonexistent_account_paths_are_the_same_404() {
    let api = start().await;
    let (_, other) = crate::common::create_account(&api.store, "Other", None).await;
    let foreign = api
        .get(&api.account_path(&other.auth_id, "Endpoint/"), &api.main)
        .await;
    let nonexistent = api
        .get(&api.account_path("MA_ZZZZZZZZ", "Endpoint/"), &api.main)
        .await;
    for reply in [&foreign, &nonexistent] {
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
        assert_eq!(reply.error(), "Account not found");
    }
    let mut foreign_body = foreign.json.clone();
    let mut nonexistent_body = nonexistent.json.clone();
    for body in [&mut foreign_body, &mut nonexistent_body] {
        body.as_object_mut().unwrap().remove("api_id");
        body.as_object_mut().unwrap().remove("auth_id");
    }
    assert_eq!(foreign_body, nonexistent_body);
}

#[tokio::test]
async fn malformed_json_and_wrong_types_are_400_json() {
    let api = start().await;
    let main = &api.main;
    let path = api.account_path(&main.auth_id, "Endpoint/");
    for raw in [
        &b"{\"username\": "[..],
        b"not json",
        b"{\"a\":1} trailing",
        b"\xff\xfe",
    ] {
        let reply = api.send_raw(Method::POST, &path, main, raw.to_vec()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
        assert_eq!(reply.error(), "malformed JSON body");
    }
    for (body, field) in [
        (json!([1, 2]), "body"),
        (json!("text"), "body"),
        (json!({"username": ["a"], "password": "x"}), "username"),
        (json!({"username": "a", "password": true}), "password"),
        (
            json!({"username": "a", "password": "passw0rd", "alias": {}}),
            "alias",
        ),
    ] {
        let reply = api.post(&path, main, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text
        );
        assert!(!reply.detail(field).is_empty(), "{body}");
    }
    // An empty body is an empty object: the required fields are reported.
    let empty = api.send_raw(Method::POST, &path, main, Vec::new()).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST, "{}", empty.text);
    assert_eq!(empty.detail("username"), "This field is required");
    // Unknown fields are ignored.
    let extra = api
        .post(&path, main, json!({"username": "extra", "password": "passw0rd", "colour": "blue", "nested": {"a": [1]}}))
        .await;
    assert_eq!(extra.status, StatusCode::CREATED, "{}", extra.text);
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_413_json() {
    let api = start().await;
    let main = &api.main;
    let alias = "a".repeat(1024 * 1024);
    let body =
        serde_json::to_vec(&json!({"username": "big", "password": "passw0rd", "alias": alias}))
            .unwrap();
    let reply = api
        .send_raw(
            Method::POST,
            &api.account_path(&main.auth_id, "Endpoint/"),
            main,
            body,
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text
    );
    assert_eq!(reply.error(), "request body too large");
}

#[tokio::test]
async fn unknown_routes_are_404_json_and_wrong_methods_405_json() {
    let api = start().await;
    let main = &api.main;
    for path in [
        "/nope".to_owned(),
        "/api/v1/Account/".to_owned(),
        api.account_path(&main.auth_id, "Number/"),
        format!("/api/v1/Accounts/{}/sub-accounts/", main.auth_id),
    ] {
        let reply = api.get(&path, main).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            reply.text
        );
        assert_eq!(reply.error(), "route not found");
    }
    for (method, path) in [
        (Method::PUT, api.account_path(&main.auth_id, "Endpoint/")),
        (
            Method::DELETE,
            api.account_path(&main.auth_id, "Application/"),
        ),
        (
            Method::PATCH,
            api.account_path(&main.auth_id, "Endpoint/123/"),
        ),
        (
            Method::POST,
            format!("/api/v1/accounts/{}/sub-accounts/SA_X", main.auth_id),
        ),
        (Method::POST, "/health".to_owned()),
    ] {
        let reply = api.send(method.clone(), &path, Some(main), None).await;
        assert_eq!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {}",
            reply.text
        );
        assert_eq!(reply.error(), "method not allowed");
    }
}

#[tokio::test]
async fn trailing_slash_is_optional_both_ways() {
    let api = start().await;
    let main = &api.main;
    let created = api
        .post(
            &api.account_path(&main.auth_id, "Endpoint"),
            main,
            json!({"username": "slashless", "password": "passw0rd"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.json["endpoint_id"].as_str().unwrap();
    for path in [
        api.account_path(&main.auth_id, "Endpoint"),
        api.account_path(&main.auth_id, "Endpoint/"),
        api.account_path(&main.auth_id, &format!("Endpoint/{id}")),
        api.account_path(&main.auth_id, &format!("Endpoint/{id}/")),
        api.account_path(&main.auth_id, "Application"),
        api.account_path(&main.auth_id, "Application/"),
        format!("/api/v1/accounts/{}/sub-accounts", main.auth_id),
        format!("/api/v1/accounts/{}/sub-accounts/", main.auth_id),
    ] {
        let reply = api.get(&path, main).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
    }
    for path in [
        "/health",
        "/health/",
        "/api/v1/openapi.json",
        "/api/v1/openapi.json/",
    ] {
        let reply = api.send(Method::GET, path, None, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn health_is_ok_without_credentials() {
    let api = start().await;
    let reply = api.send(Method::GET, "/health", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json, json!({"status": "ok"}));
}

/// A concrete request path for a documented path template.
fn concrete(template: &str, auth_id: &str) -> String {
    template
        .replace("{auth_id}", auth_id)
        .replace("{endpoint_id}", "100000000000001")
        .replace("{app_id}", "10000000000000001")
        .replace("{sub_account_id}", "SA_MISSING0")
}

#[tokio::test]
async fn openapi_documents_every_route_and_every_route_exists() {
    let api = start().await;
    let reply = api
        .send(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let document = &reply.json;
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();

    let mut operations: Vec<String> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|key| ["get", "post", "put", "delete", "patch"].contains(&key.as_str()))
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    operations.sort();
    let mut operation_ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    assert_eq!(
        operation_ids.len(),
        operations.len(),
        "every operation has an id"
    );
    operation_ids.sort();
    operation_ids.dedup();
    assert_eq!(
        operation_ids.len(),
        operations.len(),
        "operation ids are unique"
    );
    let mut expected = vec![
        "GET /health",
        "GET /api/v1/openapi.json",
        "POST /api/v1/Account/{auth_id}/Endpoint",
        "GET /api/v1/Account/{auth_id}/Endpoint",
        "GET /api/v1/Account/{auth_id}/Endpoint/{endpoint_id}",
        "POST /api/v1/Account/{auth_id}/Endpoint/{endpoint_id}",
        "DELETE /api/v1/Account/{auth_id}/Endpoint/{endpoint_id}",
        "POST /api/v1/Account/{auth_id}/Application",
        "GET /api/v1/Account/{auth_id}/Application",
        "GET /api/v1/Account/{auth_id}/Application/{app_id}",
        "POST /api/v1/Account/{auth_id}/Application/{app_id}",
        "DELETE /api/v1/Account/{auth_id}/Application/{app_id}",
        "POST /api/v1/accounts/{auth_id}/sub-accounts",
        "GET /api/v1/accounts/{auth_id}/sub-accounts",
        "GET /api/v1/accounts/{auth_id}/sub-accounts/{sub_account_id}",
        "PUT /api/v1/accounts/{auth_id}/sub-accounts/{sub_account_id}",
        "DELETE /api/v1/accounts/{auth_id}/sub-accounts/{sub_account_id}",
    ];
    expected.sort();
    assert_eq!(operations, expected);

    // Every documented operation is served (a route miss would be "route not found" /
    // "method not allowed"), and the document agrees with the served one in the library.
    for operation in &operations {
        let (method, template) = operation.split_once(' ').unwrap();
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
        let reply = api
            .send(
                method,
                &concrete(template, &api.main.auth_id),
                Some(&api.main),
                body.as_ref(),
            )
            .await;
        let error = reply.json["error"].as_str().unwrap_or_default();
        assert!(
            error != "route not found" && error != "method not allowed",
            "{operation} is documented but not routed: {}",
            reply.text
        );
    }
    let in_library = serde_json::to_value(sipd_api::openapi()).unwrap();
    assert_eq!(&in_library, document);

    // Request and response types are documented as schemas.
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for schema in [
        "EndpointObject",
        "EndpointDetail",
        "CreateEndpointRequest",
        "ApplicationObject",
        "ErrorBody",
        "SubAccountObject",
    ] {
        assert!(schemas.contains_key(schema), "{schema}");
    }
    assert_eq!(
        document["components"]["securitySchemes"]["auth_id"]["name"],
        Value::from("X-Auth-ID")
    );
}

#[tokio::test]
async fn hostile_values_get_4xx_never_a_database_error() {
    let api = start().await;
    let main = &api.main;
    let endpoints = api.account_path(&main.auth_id, "Endpoint/");
    for query in [
        "username__contains=%00",
        "alias__exact=a%00b",
        "sub_account=SA_%00",
    ] {
        let reply = api.get(&format!("{endpoints}?{query}"), main).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.text
        );
    }
    for id in ["%00", "abc", "1%2F2", "123456789012345678901234567890"] {
        let reply = api.get(&format!("{endpoints}{id}/"), main).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{id}: {}", reply.text);
        assert_eq!(reply.error(), "Endpoint not found");
        let app = api
            .delete(
                &api.account_path(&main.auth_id, &format!("Application/{id}")),
                main,
            )
            .await;
        assert_eq!(app.status, StatusCode::NOT_FOUND, "{id}: {}", app.text);
        let sub = api
            .get(
                &format!("/api/v1/accounts/{}/sub-accounts/{id}", main.auth_id),
                main,
            )
            .await;
        assert_eq!(sub.status, StatusCode::NOT_FOUND, "{id}: {}", sub.text);
    }
    let account = api
        .get(&api.account_path("SA_%00", "Endpoint/"), main)
        .await;
    assert_eq!(account.status, StatusCode::NOT_FOUND, "{}", account.text);
    let bodies = [
        (
            endpoints.clone(),
            json!({"username": "u1", "password": "passw0rd", "sub_account": "SA_\u{0}"}),
            "sub_account",
        ),
        (
            endpoints.clone(),
            json!({"username": "u1", "password": "passw0rd", "alias": "a\u{0}"}),
            "alias",
        ),
        (
            format!("/api/v1/accounts/{}/sub-accounts/", main.auth_id),
            json!({"name": "n", "description": "d\u{0}"}),
            "description",
        ),
        (
            format!("/api/v1/accounts/{}/sub-accounts/", main.auth_id),
            json!({"name": "n", "permissions": {"\u{0}": true}}),
            "permissions",
        ),
    ];
    for (path, body, field) in bodies {
        let reply = api.post(&path, main, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text
        );
        assert!(!reply.detail(field).is_empty());
    }
}

#[tokio::test]
async fn other_database_errors_are_500_json() {
    let api = start().await;
    let main = &api.main;
    // A broken schema: the endpoint list joins the registrations table.
    let mut raw = sqlx::AnyConnection::connect(api.store.url()).await.unwrap();
    sqlx::raw_sql("DROP TABLE registrations")
        .execute(&mut raw)
        .await
        .unwrap();
    let reply = api
        .get(&api.account_path(&main.auth_id, "Endpoint/"), main)
        .await;
    assert_eq!(
        reply.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        reply.text
    );
    assert_eq!(reply.error(), "internal server error");
    assert!(
        !reply.text.contains("registrations"),
        "no database detail leaks: {}",
        reply.text
    );
}
