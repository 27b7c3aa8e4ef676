//! Builders for test rows.

use sipd_store::{
    Account, Application, Binding, Endpoint, NewAccount, NewApplication, NewEndpoint, Store,
};
use std::time::Duration;

/// Upper bound for anything a test waits on.
pub const WAIT: Duration = Duration::from_secs(20);

pub async fn main_account(store: &Store, name: &str) -> (Account, String) {
    store
        .create_account(NewAccount {
            name: name.to_owned(),
            ..NewAccount::default()
        })
        .await
        .expect("create main account")
}

pub async fn sub_account(store: &Store, parent: &Account, name: &str) -> (Account, String) {
    store
        .create_account(NewAccount {
            name: name.to_owned(),
            parent_id: Some(parent.id),
            ..NewAccount::default()
        })
        .await
        .expect("create sub-account")
}

pub fn new_application(account: &Account, name: &str) -> NewApplication {
    NewApplication {
        account_id: account.id,
        app_name: name.to_owned(),
        answer_url: "https://example.com/answer".to_owned(),
        answer_method: "POST".to_owned(),
        hangup_url: None,
        hangup_method: "POST".to_owned(),
        fallback_answer_url: None,
        fallback_method: "POST".to_owned(),
        message_url: None,
        message_method: "POST".to_owned(),
        default_number_app: false,
        default_endpoint_app: false,
        application_type: "XML".to_owned(),
        default_app: false,
        enabled: true,
        log_incoming_message: true,
        public_uri: false,
        sip_transfer_url: None,
        sip_transfer_method: "POST".to_owned(),
    }
}

pub async fn application(store: &Store, account: &Account, name: &str) -> Application {
    store
        .create_application(new_application(account, name))
        .await
        .expect("create application")
}

pub fn new_endpoint(account: &Account, username: &str) -> NewEndpoint {
    NewEndpoint {
        account_id: account.id,
        username: username.to_owned(),
        password: "correct horse".to_owned(),
        alias: format!("{username} phone"),
        application_id: None,
        allow_voice: true,
        allow_message: true,
        allow_video: false,
        allow_same_domain: true,
        allow_other_domains: false,
        allow_phones: true,
        allow_apps: true,
    }
}

pub async fn endpoint(store: &Store, account: &Account, username: &str) -> Endpoint {
    store
        .create_endpoint(new_endpoint(account, username))
        .await
        .expect("create endpoint")
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A flow's binding: instance id and reg-id 1 (a `Delete` of it names `reg_id: Some(1)`).
pub fn binding(
    endpoint: &Endpoint,
    contact: &str,
    expires_at_ms: i64,
    updated_at_ms: i64,
) -> Binding {
    Binding {
        endpoint_pk: endpoint.id,
        contact_uri: contact.to_owned(),
        expires_at_ms,
        q: Some(500),
        call_id: "call-1@client".to_owned(),
        cseq: 7,
        user_agent: Some("Zoiper v5.4.5".to_owned()),
        received: "192.0.2.10:5060".to_owned(),
        transport: "udp".to_owned(),
        flow_id: Some("flow-1".to_owned()),
        instance_id: Some("<urn:uuid:00000000-0000-0000-0000-000000000001>".to_owned()),
        reg_id: Some(1),
        path: Some("<sip:edge.example.com;lr>".to_owned()),
        node_id: "node-a".to_owned(),
        updated_at_ms,
    }
}
