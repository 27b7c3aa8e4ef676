//! A real sipd-api server on a loopback socket, over a fresh store (SQLite by default,
//! PostgreSQL when `SIPD_TEST_DATABASE_URL` is set), driven with reqwest.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sipd_api::{router, ApiState};
use sipd_store::testing::{fresh_store, TestStore};
use sipd_store::{Account, NewAccount, Store};

pub const SIP_DOMAIN: &str = "registrar.test.invalid";

#[derive(Clone, Debug)]
pub struct Creds {
    pub auth_id: String,
    pub auth_token: String,
}

pub struct TestApi {
    pub store: TestStore,
    /// `http://127.0.0.1:port`
    pub base: String,
    pub client: reqwest::Client,
    /// A main account created for the test.
    pub main: Creds,
    pub main_account: Account,
}

/// Serves the API over `store` on a fresh loopback port; returns its base URL.
pub async fn serve(store: Store) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = listener.local_addr().expect("local address");
    let app = router(ApiState {
        store,
        sip_domain: SIP_DOMAIN.to_owned(),
    });
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    format!("http://{address}")
}

pub async fn start() -> TestApi {
    let store = fresh_store().await;
    let base = serve((*store).clone()).await;
    let (main_account, main) = create_account(&store, "Main", None).await;
    TestApi {
        store,
        base,
        client: reqwest::Client::new(),
        main,
        main_account,
    }
}

/// A main account (`parent_id: None`) or a sub-account, straight through the store.
pub async fn create_account(store: &Store, name: &str, parent_id: Option<i64>) -> (Account, Creds) {
    let (account, auth_token) = store
        .create_account(NewAccount {
            name: name.to_owned(),
            parent_id,
            ..NewAccount::default()
        })
        .await
        .expect("create account");
    let creds = Creds {
        auth_id: account.auth_id.clone(),
        auth_token,
    };
    (account, creds)
}

pub struct Reply {
    pub status: StatusCode,
    pub text: String,
    pub json: Value,
}

impl Reply {
    /// The `error` string of an error body (and checks the body carries an `api_id`).
    pub fn error(&self) -> &str {
        assert!(
            self.json["api_id"].is_string(),
            "no api_id in {}",
            self.text
        );
        self.json["error"]
            .as_str()
            .unwrap_or_else(|| panic!("error is not a string in {}", self.text))
    }

    pub fn detail(&self, field: &str) -> &str {
        assert_eq!(self.error(), "invalid request parameters", "{}", self.text);
        self.json["details"][field]
            .as_str()
            .unwrap_or_else(|| panic!("no details.{field} in {}", self.text))
    }
}

impl TestApi {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `/api/v1/Account/{auth_id}/{rest}`
    pub fn account_path(&self, auth_id: &str, rest: &str) -> String {
        format!("/api/v1/Account/{auth_id}/{rest}")
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        creds: Option<&Creds>,
        body: Option<&Value>,
    ) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(creds) = creds {
            request = request
                .header("X-Auth-ID", &creds.auth_id)
                .header("X-Auth-Token", &creds.auth_token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        reply(request.send().await.expect("send request")).await
    }

    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        creds: &Creds,
        body: Vec<u8>,
    ) -> Reply {
        let request = self
            .client
            .request(method, self.url(path))
            .header("X-Auth-ID", &creds.auth_id)
            .header("X-Auth-Token", &creds.auth_token)
            .header("Content-Type", "application/json")
            .body(body);
        reply(request.send().await.expect("send request")).await
    }

    pub async fn get(&self, path: &str, creds: &Creds) -> Reply {
        self.send(Method::GET, path, Some(creds), None).await
    }

    pub async fn post(&self, path: &str, creds: &Creds, body: Value) -> Reply {
        self.send(Method::POST, path, Some(creds), Some(&body))
            .await
    }

    pub async fn put(&self, path: &str, creds: &Creds, body: Value) -> Reply {
        self.send(Method::PUT, path, Some(creds), Some(&body)).await
    }

    pub async fn delete(&self, path: &str, creds: &Creds) -> Reply {
        self.send(Method::DELETE, path, Some(creds), None).await
    }

    /// Creates an endpoint under `auth_id` and returns its endpoint_id.
    pub async fn create_endpoint(&self, creds: &Creds, auth_id: &str, body: Value) -> String {
        let reply = self
            .post(&self.account_path(auth_id, "Endpoint/"), creds, body)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.json["endpoint_id"]
            .as_str()
            .expect("endpoint_id")
            .to_owned()
    }

    /// Creates an application under `auth_id` and returns its app_id.
    pub async fn create_app(&self, creds: &Creds, auth_id: &str, body: Value) -> String {
        let reply = self
            .post(&self.account_path(auth_id, "Application/"), creds, body)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.json["app_id"].as_str().expect("app_id").to_owned()
    }
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let text = response.text().await.expect("read body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, text, json }
}
