//! Test support for the service tests: endpoints created through the store (the API's path),
//! SIP clients that answer challenges, and waiting with timeouts.

#![allow(dead_code)] // Each test binary uses its own subset.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use md5::{Digest, Md5};
use sip_message::auth::Challenge;
use sip_message::{HeaderName, Message};
use sipd_registrar::service::{RegisterOutcome, RegistrarService, ServiceConfig};
use sipd_registrar::{RegistrarConfig, Source};
use sipd_store::testing::TEST_REALM;
use sipd_store::{Binding, EndpointPatch, NewAccount, NewEndpoint, Scope, Store};

pub const DOMAIN: &str = TEST_REALM;

/// The local address the clients' requests arrive on.
pub const LOCAL: &str = "192.0.2.1:5060";

pub fn config(node_id: &str) -> ServiceConfig {
    let mut registrar = RegistrarConfig::new(DOMAIN, [7u8; 32], node_id);
    registrar.min_expires_secs = 1;
    registrar.max_contacts_per_aor = 3;
    ServiceConfig::new(registrar)
}

pub async fn start(store: &Store, node_id: &str) -> RegistrarService {
    RegistrarService::start(store.clone(), config(node_id))
        .await
        .expect("service starts")
}

/// An endpoint as the API creates it.
pub struct Endpoint {
    pub pk: i64,
    pub endpoint_id: String,
    pub account_id: i64,
    pub username: String,
    pub password: String,
}

pub async fn account(store: &Store) -> i64 {
    let (account, _token) = store
        .create_account(NewAccount {
            name: "test".to_owned(),
            ..NewAccount::default()
        })
        .await
        .expect("create account");
    account.id
}

pub async fn endpoint(store: &Store, account_id: i64, username: &str) -> Endpoint {
    let password = format!("{username}-secret");
    let created = store
        .create_endpoint(NewEndpoint {
            account_id,
            username: username.to_owned(),
            password: password.clone(),
            alias: username.to_owned(),
            application_id: None,
            allow_voice: true,
            allow_message: true,
            allow_video: true,
            allow_same_domain: true,
            allow_other_domains: true,
            allow_phones: true,
            allow_apps: true,
        })
        .await
        .expect("create endpoint");
    Endpoint {
        pk: created.id,
        endpoint_id: created.endpoint_id,
        account_id,
        username: username.to_owned(),
        password,
    }
}

pub async fn change_password(store: &Store, endpoint: &mut Endpoint, password: &str) {
    store
        .update_endpoint(
            Scope::Account(endpoint.account_id),
            &endpoint.endpoint_id,
            EndpointPatch {
                password: Some(password.to_owned()),
                ..EndpointPatch::default()
            },
        )
        .await
        .expect("update endpoint")
        .expect("endpoint exists");
    endpoint.password = password.to_owned();
}

pub fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A SIP user agent registering one contact over one flow.
#[derive(Clone)]
pub struct Client {
    pub username: String,
    pub password: String,
    pub contact: String,
    /// The host of the AOR in From and To: the domain, unless a test names it otherwise.
    pub aor_host: String,
    pub call_id: String,
    pub cseq: u32,
    pub source: Source,
    /// Further header lines (without CRLF), e.g. `Supported: outbound`.
    pub headers: Vec<String>,
    nonce: Option<String>,
    /// The nonce-count of the last answer.
    pub nc: u32,
}

impl Client {
    pub fn new(endpoint: &Endpoint, contact_host: &str, flow_id: &str) -> Client {
        let remote: SocketAddr = format!("{contact_host}:5060").parse().unwrap();
        let flow: sip_message::FlowId = flow_id.parse().unwrap();
        let transport = flow.transport();
        Client {
            username: endpoint.username.clone(),
            password: endpoint.password.clone(),
            contact: format!("<sip:{}@{remote};transport={transport}>", endpoint.username),
            aor_host: DOMAIN.to_owned(),
            call_id: format!("call-{}-{contact_host}", endpoint.username),
            cseq: 0,
            source: Source {
                remote,
                flow,
                local: LOCAL.parse().unwrap(),
            },
            headers: Vec::new(),
            nonce: None,
            nc: 0,
        }
    }

    /// The REGISTER text with `expires` and, when a nonce is known, an Authorization answer.
    pub fn request(&mut self, expires: u32) -> Message {
        self.cseq += 1;
        let mut text = format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
             Via: SIP/2.0/{} {};branch=z9hG4bK-{}-{}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{host}>;tag=f-{user}\r\n\
             To: <sip:{user}@{host}>\r\n\
             Call-ID: {}\r\n\
             CSeq: {} REGISTER\r\n\
             Contact: {}\r\n\
             Expires: {expires}\r\n\
             User-Agent: test-phone/1.0\r\n",
            self.source.flow.transport().via_token(),
            self.source.remote,
            self.call_id,
            self.cseq,
            self.call_id,
            self.cseq,
            self.contact,
            user = self.username,
            host = self.aor_host,
        );
        for header in &self.headers {
            text.push_str(header);
            text.push_str("\r\n");
        }
        if let Some(nonce) = self.nonce.clone() {
            self.nc += 1;
            let uri = format!("sip:{DOMAIN}");
            let answer = self.answer("REGISTER", &uri, &nonce);
            text.push_str(&format!("Authorization: {answer}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        Message::parse_slice(text.as_bytes()).expect("test REGISTER parses")
    }

    /// A `method` request (INVITE, MESSAGE, …) to `to_user` of the domain, as a proxy gets it
    /// from this device, with a `Proxy-Authorization` answer when a nonce is known.
    pub fn proxied(&mut self, method: &str, to_user: &str) -> Message {
        self.cseq += 1;
        let uri = format!("sip:{to_user}@{DOMAIN}");
        let mut text = format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/{} {};branch=z9hG4bK-{}-{}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{DOMAIN}>;tag=f-{user}\r\n\
             To: <{uri}>\r\n\
             Call-ID: {}-{method}\r\n\
             CSeq: {} {method}\r\n\
             Contact: {}\r\n",
            self.source.flow.transport().via_token(),
            self.source.remote,
            self.call_id,
            self.cseq,
            self.call_id,
            self.cseq,
            self.contact,
            user = self.username,
        );
        if let Some(nonce) = self.nonce.clone() {
            self.nc += 1;
            let answer = self.answer(method, &uri, &nonce);
            text.push_str(&format!("Proxy-Authorization: {answer}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        Message::parse_slice(text.as_bytes()).expect("test request parses")
    }

    /// The MD5 Digest answer (the default algorithm) for `method` and `uri`, at the current nc.
    fn answer(&self, method: &str, uri: &str, nonce: &str) -> String {
        let hash = |data: String| format!("{:x}", Md5::digest(data.as_bytes()));
        let ha1 = hash(format!("{}:{DOMAIN}:{}", self.username, self.password));
        let ha2 = hash(format!("{method}:{uri}"));
        let response = hash(format!("{ha1}:{nonce}:{:08x}:c0ffee:auth:{ha2}", self.nc));
        format!(
            r#"Digest username="{}", realm="{DOMAIN}", nonce="{nonce}", uri="{uri}", response="{response}", algorithm=MD5, qop=auth, cnonce="c0ffee", nc={:08x}"#,
            self.username, self.nc
        )
    }

    /// Keeps the nonce of a 401.
    pub fn take_challenge(&mut self, outcome: &RegisterOutcome) {
        assert_eq!(outcome.status, 401, "{}", text(outcome));
        self.take_nonce(&outcome.response);
    }

    /// Keeps the MD5 nonce of a 401 or 407 `response`, and starts counting from 1.
    pub fn take_nonce(&mut self, response: &[u8]) {
        let message = Message::parse_slice(response).unwrap();
        let nonce = message
            .headers_named(HeaderName::WwwAuthenticate)
            .chain(message.headers_named(HeaderName::ProxyAuthenticate))
            .find_map(|value| match Challenge::parse(value) {
                Ok(Challenge::Digest(digest)) if digest.algorithm.as_str() == "MD5" => {
                    Some(digest.nonce.into_owned())
                }
                _ => None,
            })
            .expect("an MD5 challenge");
        self.nonce = Some(nonce);
        self.nc = 0;
    }

    pub async fn send(&mut self, service: &RegistrarService, expires: u32) -> RegisterOutcome {
        let request = self.request(expires);
        service
            .handle_register(&request, self.source, SystemTime::now())
            .await
    }

    /// Registers (or unregisters with 0) as a phone does: answers a challenge, also a stale one.
    pub async fn register(&mut self, service: &RegistrarService, expires: u32) -> RegisterOutcome {
        for _ in 0..3 {
            let outcome = self.send(service, expires).await;
            if outcome.status != 401 {
                return outcome;
            }
            self.take_challenge(&outcome);
        }
        panic!("still challenged after three attempts");
    }
}

/// The user's live bindings as the service's location service has them (none for an unknown
/// user).
pub async fn live_bindings(
    service: &RegistrarService,
    username: &str,
    now: SystemTime,
) -> Vec<Binding> {
    service
        .locate(username, now)
        .await
        .expect("locate")
        .map(|located| located.bindings)
        .unwrap_or_default()
}

pub fn text(outcome: &RegisterOutcome) -> String {
    String::from_utf8_lossy(&outcome.response).into_owned()
}

/// Waits until `condition` holds, checking it again after each piece of the service's
/// background work; fails after ten seconds.
pub async fn wait_until<F, Fut>(service: &RegistrarService, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let mut activity = service.activity();
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            // Marked seen before checking: work done after the check wakes `changed`.
            activity.borrow_and_update();
            if condition().await {
                return;
            }
            activity
                .changed()
                .await
                .expect("the service stopped while waited on");
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}
