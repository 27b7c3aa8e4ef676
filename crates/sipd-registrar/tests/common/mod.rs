//! Test fixture: a registrar driven exactly as the shell drives it, over an in-memory store and
//! a virtual clock, with a digest client that answers challenges.

#![allow(dead_code)] // Each test binary uses its own subset.

use std::collections::HashMap;
use std::net::SocketAddr;

use chrono::DateTime;
use md5::{Digest, Md5};
use sha2::Sha256;
use sip_message::auth::Challenge;
use sip_message::{HeaderName, Message};
use sipd_registrar::{
    Binding, BindingChange, Credentials, DigestCredentials, Registrar, RegistrarConfig,
    Registration, Response, Source, Start,
};

pub const DOMAIN: &str = "example.com";
pub const T0: i64 = 1_700_000_000_000;

pub fn config() -> RegistrarConfig {
    RegistrarConfig::new(DOMAIN, [42u8; 32], "node-1")
}

pub fn credentials(
    endpoint_pk: i64,
    username: &str,
    password: &str,
    changed_at_ms: i64,
) -> DigestCredentials {
    let secret = format!("{username}:{DOMAIN}:{password}");
    let row = Credentials {
        endpoint_pk,
        endpoint_id: format!("ep{endpoint_pk}"),
        account_id: 1,
        account_family_id: 1,
        application_id: None,
        username: username.to_owned(),
        ha1_md5: format!("{:x}", Md5::digest(secret.as_bytes())),
        ha1_sha256: format!("{:x}", Sha256::digest(secret.as_bytes())),
        credentials_changed_at: DateTime::from_timestamp_millis(changed_at_ms).unwrap(),
        allow_voice: true,
        allow_message: true,
        allow_video: true,
        allow_same_domain: true,
        allow_other_domains: true,
        allow_phones: true,
        allow_apps: true,
    };
    DigestCredentials::from_store(&row).unwrap()
}

/// The address the fixture's requests arrive on.
pub const LOCAL: &str = "192.0.2.1:5060";

pub fn source(addr: &str, flow: &str) -> Source {
    Source {
        remote: addr.parse::<SocketAddr>().unwrap(),
        flow: flow.parse().unwrap(),
        local: LOCAL.parse().unwrap(),
    }
}

/// A REGISTER under construction.
#[derive(Clone)]
pub struct Req {
    pub user: String,
    pub to: String,
    pub call_id: String,
    pub cseq: u32,
    pub vias: Vec<String>,
    pub headers: Vec<String>,
}

impl Req {
    pub fn new(user: &str) -> Req {
        Req {
            user: user.to_owned(),
            to: format!("<sip:{user}@{DOMAIN}>"),
            call_id: format!("call-{user}"),
            cseq: 1,
            vias: vec!["SIP/2.0/TCP 192.168.1.10:5060;branch=z9hG4bK-1".to_owned()],
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, line: &str) -> Req {
        self.headers.push(line.to_owned());
        self
    }

    pub fn contact(self, value: &str) -> Req {
        self.header(&format!("Contact: {value}"))
    }

    pub fn to(mut self, value: &str) -> Req {
        self.to = value.to_owned();
        self
    }

    pub fn call_id(mut self, value: &str) -> Req {
        self.call_id = value.to_owned();
        self
    }

    pub fn text(&self, authorization: Option<&str>) -> String {
        let mut text = format!("REGISTER sip:{DOMAIN} SIP/2.0\r\n");
        for via in &self.vias {
            text.push_str(&format!("Via: {via}\r\n"));
        }
        text.push_str(&format!(
            "Max-Forwards: 70\r\nFrom: <sip:{}@{DOMAIN}>;tag=from-1\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} REGISTER\r\n",
            self.user, self.to, self.call_id, self.cseq
        ));
        for header in &self.headers {
            text.push_str(header);
            text.push_str("\r\n");
        }
        if let Some(value) = authorization {
            text.push_str(&format!("Authorization: {value}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        text
    }

    pub fn message(&self, authorization: Option<&str>) -> Message {
        Message::parse_slice(self.text(authorization).as_bytes()).expect("test REGISTER parses")
    }
}

/// An `Authorization` value answering `nonce`.
pub struct Answer<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub realm: &'a str,
    pub algorithm: &'a str,
    pub nonce: &'a str,
    pub nc: u32,
    pub cnonce: &'a str,
    pub uri: &'a str,
}

impl Answer<'_> {
    /// The request digest for a REGISTER.
    pub fn response(&self) -> String {
        self.response_for("REGISTER")
    }

    /// The request digest for a request of `method`.
    pub fn response_for(&self, method: &str) -> String {
        let hash = |data: String| match self.algorithm {
            "SHA-256" => format!("{:x}", Sha256::digest(data.as_bytes())),
            _ => format!("{:x}", Md5::digest(data.as_bytes())),
        };
        let ha1 = hash(format!(
            "{}:{}:{}",
            self.username, self.realm, self.password
        ));
        let ha2 = hash(format!("{method}:{}", self.uri));
        hash(format!(
            "{ha1}:{}:{:08x}:{}:auth:{ha2}",
            self.nonce, self.nc, self.cnonce
        ))
    }

    /// The credentials header value for a REGISTER.
    pub fn header_value(&self) -> String {
        self.header_value_for("REGISTER")
    }

    /// The credentials header value for a request of `method`.
    pub fn header_value_for(&self, method: &str) -> String {
        format!(
            r#"Digest username="{}", realm="{}", nonce="{}", uri="{}", response="{}", algorithm={}, qop=auth, cnonce="{}", nc={:08x}"#,
            self.username,
            self.realm,
            self.nonce,
            self.uri,
            self.response_for(method),
            self.algorithm,
            self.cnonce,
            self.nc
        )
    }
}

pub fn parse(response: &Response) -> Message {
    Message::parse(response.bytes.clone()).expect("registrar response parses")
}

/// One Digest challenge of a 401.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub realm: String,
    pub nonce: String,
    pub algorithm: String,
    pub qop: Vec<String>,
    pub stale: bool,
}

/// The Digest challenges of a 401 or 407, in order.
pub fn challenges(response: &Response) -> Vec<Offer> {
    let message = parse(response);
    message
        .headers_named(HeaderName::WwwAuthenticate)
        .chain(message.headers_named(HeaderName::ProxyAuthenticate))
        .map(
            |value| match Challenge::parse(value).expect("challenge parses") {
                Challenge::Digest(digest) => Offer {
                    realm: digest.realm.into_owned(),
                    nonce: digest.nonce.into_owned(),
                    algorithm: digest.algorithm.as_str().to_owned(),
                    qop: digest.qop.iter().map(|q| q.as_str().to_owned()).collect(),
                    stale: digest.stale,
                },
                _ => panic!("non-Digest challenge"),
            },
        )
        .collect()
}

pub fn header_values(response: &Response, name: &str) -> Vec<String> {
    let message = parse(response);
    message
        .headers_by_name(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// Contact values of a 200.
pub fn contacts(response: &Response) -> Vec<String> {
    header_values(response, "Contact")
}

/// Registrar + in-memory store + virtual clock + one digest client per user name.
pub struct Fixture {
    pub registrar: Registrar,
    pub users: Vec<DigestCredentials>,
    pub store: Vec<Binding>,
    pub now: i64,
    pub source: Source,
    pub algorithm: &'static str,
    /// The client's current nonce and its last nonce-count.
    pub nonce: Option<String>,
    pub nc: u32,
    /// Credential lookups the shell made.
    pub lookups: Vec<String>,
    /// Last CSeq sent per Call-ID.
    pub cseqs: HashMap<String, u32>,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with_config(config())
    }

    pub fn with_config(config: RegistrarConfig) -> Fixture {
        Fixture {
            registrar: Registrar::new(config).unwrap(),
            users: vec![
                credentials(1, "alice", "wonderland", T0 - 86_400_000),
                credentials(2, "bob", "builder", T0 - 86_400_000),
            ],
            store: Vec::new(),
            now: T0,
            source: source("203.0.113.7:40000", "tcp-1"),
            algorithm: "MD5",
            nonce: None,
            nc: 0,
            lookups: Vec::new(),
            cseqs: HashMap::new(),
        }
    }

    /// Runs the three steps as the shell does, committing to the in-memory store on success.
    pub fn send_message(&mut self, message: &Message) -> Result<Registration, Response> {
        let pending = match self.registrar.start(message, &self.source, self.now) {
            Start::Respond(response) => return Err(response),
            Start::NeedCredentials(pending) => pending,
        };
        self.lookups.push(pending.username().to_owned());
        let credentials = self
            .users
            .iter()
            .find(|c| *c.endpoint.username == *pending.username())
            .cloned();
        let authorized = self
            .registrar
            .authenticate(pending, credentials.as_ref(), self.now)?;
        let mine: Vec<Binding> = self
            .store
            .iter()
            .filter(|b| b.endpoint_pk == authorized.endpoint_pk())
            .cloned()
            .collect();
        let registration =
            self.registrar
                .register(message, &authorized, &mine, &self.source, self.now)?;
        // As the store applies them: one row per key (endpoint, contact URI, reg-id).
        for change in &registration.changes {
            match change {
                BindingChange::Upsert(binding)
                | BindingChange::UpsertAuthenticated { binding, .. } => {
                    self.store.retain(|b| b.key() != binding.key());
                    self.store.push(binding.clone());
                }
                BindingChange::Delete {
                    endpoint_pk,
                    contact_uri,
                    reg_id,
                } => self
                    .store
                    .retain(|b| b.key() != (*endpoint_pk, contact_uri.as_str(), *reg_id)),
                BindingChange::DeleteAllForEndpoint { endpoint_pk } => {
                    self.store.retain(|b| b.endpoint_pk != *endpoint_pk)
                }
            }
        }
        Ok(registration)
    }

    pub fn send(
        &mut self,
        req: &Req,
        authorization: Option<&str>,
    ) -> Result<Registration, Response> {
        self.send_message(&req.message(authorization))
    }

    /// Sends without credentials and keeps the nonce of the 401.
    pub fn fetch_nonce(&mut self, req: &Req) -> Response {
        let response = self
            .send(req, None)
            .expect_err("unauthenticated REGISTER is challenged");
        assert_eq!(response.status, 401);
        self.take_nonce(&response);
        response
    }

    pub fn take_nonce(&mut self, challenge: &Response) {
        let offers = challenges(challenge);
        self.nonce = Some(offers[0].nonce.to_string());
        self.nc = 0;
    }

    pub fn answer_value(&mut self, req: &Req, password: &str) -> String {
        self.nc += 1;
        let nonce = self.nonce.clone().expect("a nonce was fetched");
        Answer {
            username: &req.user,
            password,
            realm: DOMAIN,
            algorithm: self.algorithm,
            nonce: &nonce,
            nc: self.nc,
            cnonce: "0a4f113b",
            uri: &format!("sip:{DOMAIN}"),
        }
        .header_value()
    }

    /// Sends with an answer to the current nonce (fetching one first if needed), the user's
    /// password and the next nonce-count, with the CSeq following the last one of its Call-ID
    /// (as a client does).
    pub fn send_authorized(&mut self, req: &mut Req) -> Result<Registration, Response> {
        let next = self
            .cseqs
            .get(&req.call_id)
            .map_or(req.cseq, |last| last + 1);
        req.cseq = next;
        self.cseqs.insert(req.call_id.clone(), next);
        self.send_exact(req)
    }

    /// Sends with an answer, keeping the request's CSeq as it is.
    pub fn send_exact(&mut self, req: &Req) -> Result<Registration, Response> {
        if self.nonce.is_none() {
            self.fetch_nonce(req);
        }
        let password = self.password_of(&req.user);
        let value = self.answer_value(req, &password);
        self.send(req, Some(&value))
    }

    /// [`send_authorized`], expecting a 200; like a client, retries once with the new nonce of
    /// a `stale=true` challenge.
    pub fn register(&mut self, req: &mut Req) -> Registration {
        let mut result = self.send_authorized(req);
        if let Err(response) = &result {
            if response.status == 401 && challenges(response).iter().all(|o| o.stale) {
                let response = response.clone();
                self.take_nonce(&response);
                result = self.send_authorized(req);
            }
        }
        match result {
            Ok(registration) => registration,
            Err(response) => panic!(
                "expected 200, got {}",
                String::from_utf8_lossy(&response.bytes)
            ),
        }
    }

    /// [`send_authorized`], expecting a refusal.
    pub fn refused(&mut self, req: &mut Req) -> Response {
        match self.send_authorized(req) {
            Ok(registration) => panic!(
                "expected a refusal, got {}",
                String::from_utf8_lossy(&registration.response.bytes)
            ),
            Err(response) => response,
        }
    }

    pub fn password_of(&self, user: &str) -> String {
        match user {
            "alice" => "wonderland",
            "bob" => "builder",
            _ => "whatever",
        }
        .to_owned()
    }

    pub fn advance_secs(&mut self, secs: i64) {
        self.now += secs * 1000;
    }
}

/// Contact URIs the registration deletes one by one.
pub fn removed(registration: &Registration) -> Vec<&str> {
    registration
        .changes
        .iter()
        .filter_map(|change| match change {
            BindingChange::Delete { contact_uri, .. } => Some(contact_uri.as_str()),
            _ => None,
        })
        .collect()
}
