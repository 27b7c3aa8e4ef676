//! Binding rules (RFC 3261 §10.3, RFC 5626, RFC 5627, RFC 3327) through the whole drive
//! sequence.

mod common;

use common::*;
use sipd_registrar::{expired_bindings, next_expiry_ms, BindingChange};

const PHONE: &str = "<sip:alice@192.168.1.10:5060;transport=tcp>";
const LAPTOP: &str = "<sip:alice@10.0.0.5:5062>";
const INSTANCE: &str = "\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"";

fn alice() -> Req {
    Req::new("alice")
}

fn uris(fx: &Fixture) -> Vec<&str> {
    fx.store.iter().map(|b| b.contact_uri.as_str()).collect()
}

#[test]
fn register_stores_the_binding_with_nat_facts() {
    let mut fx = Fixture::new();
    let registration = fx.register(&mut alice().contact(PHONE).header("User-Agent: Phone/1.0"));
    assert_eq!(fx.store.len(), 1);
    let binding = &fx.store[0];
    assert_eq!(binding.endpoint_pk, 1);
    assert_eq!(
        binding.contact_uri,
        "sip:alice@192.168.1.10:5060;transport=tcp"
    );
    assert_eq!(binding.expires_at_ms, T0 + 3_600_000);
    assert_eq!(binding.call_id, "call-alice");
    assert_eq!(binding.cseq, 1);
    assert_eq!(binding.user_agent.as_deref(), Some("Phone/1.0"));
    // Where the REGISTER really came from, not the private address in Contact.
    assert_eq!(binding.received, "203.0.113.7:40000");
    assert_eq!(binding.transport, "tcp");
    assert_eq!(binding.flow_id.as_deref(), Some("tcp-1"));
    assert_eq!(binding.node_id, "node-1");
    assert_eq!(binding.updated_at_ms, T0);
    assert_eq!(binding.q, None);
    assert_eq!(registration.bindings, &fx.store[..]);
    // Conditional on the credentials alice authenticated with.
    assert_eq!(
        registration.changes,
        [BindingChange::UpsertAuthenticated {
            binding: fx.store[0].clone(),
            credentials_changed_at_ms: fx.users[0].changed_at_ms,
        }]
    );

    let response = &registration.response;
    assert_eq!(response.status, 200);
    assert_eq!(
        contacts(response),
        ["<sip:alice@192.168.1.10:5060;transport=tcp>;expires=3600"]
    );
    let message = parse(response);
    assert!(message.to_tag().is_some());
    assert_eq!(
        header_values(response, "Date"),
        ["Tue, 14 Nov 2023 22:13:20 GMT"]
    );
    assert!(header_values(response, "Require").is_empty());
}

#[test]
fn ipv6_source_is_recorded_with_brackets() {
    let mut fx = Fixture::new();
    fx.source = source("[2001:db8::7]:5060", "tcp-6");
    fx.register(&mut alice().contact(PHONE));
    assert_eq!(fx.store[0].received, "[2001:db8::7]:5060");
}

#[test]
fn ok_lists_every_binding_with_its_remaining_time() {
    let mut fx = Fixture::new();
    let mut phone = alice().contact(PHONE);
    fx.register(&mut phone);
    fx.advance_secs(1000);
    let mut laptop = alice()
        .call_id("laptop-call")
        .contact(LAPTOP)
        .header("Expires: 600");
    let registration = fx.register(&mut laptop);
    let mut listed = contacts(&registration.response);
    listed.sort();
    assert_eq!(
        listed,
        [
            "<sip:alice@10.0.0.5:5062>;expires=600",
            "<sip:alice@192.168.1.10:5060;transport=tcp>;expires=2600",
        ]
    );
}

#[test]
fn fetch_without_contact_lists_bindings_and_changes_nothing() {
    let mut fx = Fixture::new();
    fx.register(&mut alice().contact(PHONE));
    let before = fx.store.clone();
    fx.advance_secs(100);
    let registration = fx.register(&mut alice());
    assert!(registration.changes.is_empty());
    assert_eq!(fx.store, before);
    assert_eq!(
        contacts(&registration.response),
        ["<sip:alice@192.168.1.10:5060;transport=tcp>;expires=3500"]
    );
}

#[test]
fn fetch_of_nothing_lists_nothing() {
    let mut fx = Fixture::new();
    let registration = fx.register(&mut alice());
    assert_eq!(registration.response.status, 200);
    assert!(contacts(&registration.response).is_empty());
}

#[test]
fn expires_below_minimum_is_too_brief() {
    let mut fx = Fixture::new();
    let response = fx.refused(&mut alice().contact(PHONE).header("Expires: 59"));
    assert_eq!(response.status, 423);
    assert_eq!(header_values(&response, "Min-Expires"), ["60"]);
    let response = fx.refused(&mut alice().contact(&format!("{PHONE};expires=1")));
    assert_eq!(response.status, 423);
    // One brief contact fails the whole request.
    let response = fx.refused(
        &mut alice()
            .contact(LAPTOP)
            .contact(&format!("{PHONE};expires=30")),
    );
    assert_eq!(response.status, 423);
    assert!(fx.store.is_empty());
    // The minimum itself is fine.
    fx.register(&mut alice().contact(PHONE).header("Expires: 60"));
    assert_eq!(fx.store[0].expires_at_ms, fx.now + 60_000);
}

#[test]
fn expires_above_maximum_is_shortened() {
    let mut fx = Fixture::new();
    let registration = fx.register(&mut alice().contact(PHONE).header("Expires: 4294967295"));
    assert_eq!(
        contacts(&registration.response),
        [format!("{PHONE};expires=7200")]
    );
    assert_eq!(fx.store[0].expires_at_ms, fx.now + 7_200_000);
}

#[test]
fn contact_expires_parameter_wins_over_the_header() {
    let mut fx = Fixture::new();
    let registration = fx.register(
        &mut alice()
            .header("Expires: 120")
            .contact(&format!("{PHONE};expires=300"))
            .contact(LAPTOP),
    );
    let mut listed = contacts(&registration.response);
    listed.sort();
    assert_eq!(
        listed,
        [
            format!("{LAPTOP};expires=120"),
            format!("{PHONE};expires=300")
        ]
    );
}

#[test]
fn default_expiry_applies_without_either() {
    let mut fx = Fixture::new();
    fx.register(&mut alice().contact(PHONE));
    assert_eq!(fx.store[0].expires_at_ms, T0 + 3_600_000);
}

#[test]
fn expires_zero_removes_that_binding_only() {
    let mut fx = Fixture::new();
    let mut req = alice().contact(PHONE).contact(LAPTOP);
    fx.register(&mut req);
    assert_eq!(fx.store.len(), 2);
    let mut req = alice().contact(&format!("{PHONE};expires=0"));
    let registration = fx.register(&mut req);
    assert_eq!(
        removed(&registration),
        ["sip:alice@192.168.1.10:5060;transport=tcp"]
    );
    assert_eq!(uris(&fx), ["sip:alice@10.0.0.5:5062"]);
    assert_eq!(
        contacts(&registration.response),
        [format!("{LAPTOP};expires=3600")]
    );
}

#[test]
fn expires_zero_matches_equivalent_uris() {
    let mut fx = Fixture::new();
    fx.register(&mut alice().contact(PHONE));
    // RFC 3261 §19.1.4: host case and parameter order do not matter.
    fx.register(&mut alice().contact("<sip:alice@192.168.1.10:5060;TRANSPORT=TCP>;expires=0"));
    assert!(fx.store.is_empty());
}

#[test]
fn star_with_expires_zero_removes_all() {
    let mut fx = Fixture::new();
    fx.register(&mut alice().contact(PHONE).contact(LAPTOP));
    fx.register(
        &mut alice()
            .call_id("other")
            .contact(LAPTOP.replace("5062", "5070").as_str()),
    );
    assert_eq!(fx.store.len(), 3);
    let registration = fx.register(&mut alice().contact("*").header("Expires: 0"));
    assert_eq!(
        registration.changes,
        [BindingChange::DeleteAllForEndpoint { endpoint_pk: 1 }]
    );
    assert!(fx.store.is_empty());
    assert!(contacts(&registration.response).is_empty());
}

#[test]
fn star_misuse_is_a_bad_request() {
    let mut fx = Fixture::new();
    fx.register(&mut alice().contact(PHONE));
    for req in [
        alice().contact("*").contact(LAPTOP).header("Expires: 0"),
        alice()
            .contact("*, <sip:alice@10.0.0.9>")
            .header("Expires: 0"),
        alice().contact("*").header("Expires: 30"),
        alice().contact("*"),
    ] {
        let response = fx.refused(&mut req.clone());
        assert_eq!(response.status, 400, "{}", req.text(None));
    }
    assert_eq!(fx.store.len(), 1);
}

#[test]
fn star_respects_cseq_order() {
    let mut fx = Fixture::new();
    let mut req = alice().contact(PHONE);
    fx.register(&mut req);
    let star = alice().contact("*").header("Expires: 0");
    assert_eq!(star.cseq, fx.store[0].cseq as u32, "the stored CSeq again");
    assert_eq!(fx.send_exact(&star).unwrap_err().status, 500);
    assert_eq!(fx.store.len(), 1);
}

#[test]
fn stale_cseq_with_the_same_call_id_fails_with_500() {
    let mut fx = Fixture::new();
    let mut req = alice().contact(PHONE);
    req.cseq = 11;
    fx.send_exact(&req).unwrap();
    let before = fx.store.clone();
    for cseq in [11, 10] {
        // Equal and lower.
        let mut stale = alice().contact(PHONE).header("Expires: 600");
        stale.cseq = cseq;
        let response = fx.send_exact(&stale).unwrap_err();
        assert_eq!(response.status, 500);
        assert_eq!(fx.store, before, "nothing changes");
    }
    // A higher CSeq is fine.
    req.cseq = 12;
    fx.send_exact(&req).unwrap();
    assert_eq!(fx.store[0].cseq, 12);
}

#[test]
fn a_stale_contact_fails_the_whole_request() {
    let mut fx = Fixture::new();
    let mut req = alice().contact(PHONE);
    req.cseq = 10;
    fx.send_exact(&req).unwrap();
    let mut mixed = alice().contact(LAPTOP).contact(PHONE);
    mixed.cseq = 5;
    assert_eq!(fx.send_exact(&mixed).unwrap_err().status, 500);
    assert_eq!(uris(&fx), ["sip:alice@192.168.1.10:5060;transport=tcp"]);
}

#[test]
fn a_new_call_id_is_accepted_whatever_its_cseq() {
    let mut fx = Fixture::new();
    let mut req = alice().contact(PHONE);
    req.cseq = 100;
    fx.send_exact(&req).unwrap();
    let rebooted = alice().call_id("after-reboot").contact(PHONE);
    fx.send_exact(&rebooted).unwrap();
    assert_eq!(fx.store.len(), 1);
    assert_eq!(fx.store[0].call_id, "after-reboot");
    assert_eq!(fx.store[0].cseq, 1);
}

#[test]
fn the_same_contact_twice_in_one_request_is_one_binding() {
    let mut fx = Fixture::new();
    fx.register(
        &mut alice()
            .contact(PHONE)
            .contact(&format!("{PHONE};expires=900")),
    );
    assert_eq!(fx.store.len(), 1);
    assert_eq!(fx.store[0].expires_at_ms, T0 + 900_000);
}

#[test]
fn q_values_are_kept_and_listed() {
    let mut fx = Fixture::new();
    let registration = fx.register(
        &mut alice()
            .contact(&format!("{PHONE};q=0.5"))
            .contact(&format!("{LAPTOP};q=1.0")),
    );
    let q: Vec<_> = fx.store.iter().map(|b| b.q).collect();
    assert_eq!(q, [Some(500), Some(1000)]);
    let mut listed = contacts(&registration.response);
    listed.sort();
    assert_eq!(
        listed,
        [
            format!("{LAPTOP};expires=3600;q=1"),
            format!("{PHONE};expires=3600;q=0.5"),
        ]
    );
}

#[test]
fn contact_limit_drops_the_least_recently_refreshed() {
    let mut config = config();
    config.max_contacts_per_aor = 3;
    let mut fx = Fixture::with_config(config);
    for port in 5001..=5003 {
        fx.register(
            &mut alice()
                .call_id(&format!("c{port}"))
                .contact(&format!("<sip:alice@10.0.0.1:{port}>")),
        );
        fx.advance_secs(1);
    }
    // Refresh the first, so the second is now the oldest.
    fx.register(
        &mut alice()
            .call_id("c5001")
            .contact("<sip:alice@10.0.0.1:5001>"),
    );
    let registration = fx.register(
        &mut alice()
            .call_id("c5004")
            .contact("<sip:alice@10.0.0.1:5004>"),
    );
    assert_eq!(removed(&registration), ["sip:alice@10.0.0.1:5002"]);
    let mut ports: Vec<_> = uris(&fx);
    ports.sort();
    assert_eq!(
        ports,
        [
            "sip:alice@10.0.0.1:5001",
            "sip:alice@10.0.0.1:5003",
            "sip:alice@10.0.0.1:5004"
        ]
    );
    assert_eq!(contacts(&registration.response).len(), 3);
}

#[test]
fn a_request_with_more_contacts_than_allowed_is_forbidden() {
    let mut config = config();
    config.max_contacts_per_aor = 2;
    let mut fx = Fixture::with_config(config);
    let response = fx.refused(
        &mut alice()
            .contact(PHONE)
            .contact(LAPTOP)
            .contact("<sip:alice@10.0.0.9>"),
    );
    assert_eq!(response.status, 403);
    assert!(fx.store.is_empty());
}

#[test]
fn expired_bindings_are_not_listed_and_left_to_the_purge() {
    let mut fx = Fixture::new();
    fx.register(&mut alice().contact(PHONE).header("Expires: 60"));
    fx.advance_secs(61);
    let registration = fx.register(&mut alice().call_id("new").contact(LAPTOP));
    assert!(removed(&registration).is_empty());
    assert_eq!(
        contacts(&registration.response),
        [format!("{LAPTOP};expires=3600")]
    );
    assert_eq!(registration.bindings.len(), 1);
}

#[test]
fn outbound_flow_is_replaced_by_a_registration_on_a_new_flow() {
    let mut fx = Fixture::new();
    let flow_contact =
        format!("<sip:alice@192.168.1.10:5060;transport=tcp;ob>;+sip.instance={INSTANCE};reg-id=1");
    let mut req = alice()
        .header("Supported: outbound, path")
        .contact(&flow_contact);
    let first = fx.register(&mut req);
    assert_eq!(header_values(&first.response, "Require"), ["outbound"]);
    assert_eq!(fx.store[0].reg_id, Some(1));
    assert_eq!(
        fx.store[0].instance_id.as_deref(),
        Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>")
    );
    assert_eq!(
        contacts(&first.response),
        [format!("<sip:alice@192.168.1.10:5060;transport=tcp;ob>;expires=3600;+sip.instance={INSTANCE};reg-id=1")]
    );

    // The connection broke; the device re-registers over a new one, from a new address,
    // with a new Contact.
    fx.advance_secs(30);
    fx.source = source("203.0.113.7:40222", "tcp-2");
    let new_contact = flow_contact.replace("5060", "5099");
    let mut req = alice().header("Supported: outbound").contact(&new_contact);
    let second = fx.register(&mut req);
    assert_eq!(fx.store.len(), 1, "the old flow's binding is replaced");
    assert_eq!(fx.store[0].flow_id.as_deref(), Some("tcp-2"));
    assert_eq!(fx.store[0].received, "203.0.113.7:40222");
    assert_eq!(
        fx.store[0].contact_uri,
        "sip:alice@192.168.1.10:5099;transport=tcp;ob"
    );
    assert_eq!(
        removed(&second),
        ["sip:alice@192.168.1.10:5060;transport=tcp;ob"]
    );

    // A second flow (reg-id 2) with its own Contact is a second binding.
    let mut req = alice()
        .call_id("flow-2")
        .header("Supported: outbound")
        .contact(
            &flow_contact
                .replace("reg-id=1", "reg-id=2")
                .replace("5060", "5061"),
        );
    fx.register(&mut req);
    assert_eq!(fx.store.len(), 2);
}

#[test]
fn two_flows_with_the_same_contact_are_two_bindings() {
    // RFC 5626 §6: a device registers one flow per connection or edge proxy (reg-id 1 and 2),
    // with the same Contact URI on each.
    let mut fx = Fixture::new();
    let uri = "sip:alice@192.168.1.10:5060;transport=tcp;ob";
    let flow = |reg_id: u32| format!("<{uri}>;+sip.instance={INSTANCE};reg-id={reg_id}");
    let listed = |expires: u32, reg_id: u32| {
        format!("<{uri}>;expires={expires};+sip.instance={INSTANCE};reg-id={reg_id}")
    };
    let on_flow = |reg_id: u32| {
        alice()
            .call_id(&format!("flow-{reg_id}"))
            .header("Supported: outbound")
    };
    let mut first = on_flow(1).contact(&flow(1));
    fx.register(&mut first);
    fx.source = source("203.0.113.7:40222", "tcp-2");
    let mut second = on_flow(2).contact(&flow(2));
    let registration = fx.register(&mut second);
    assert!(removed(&registration).is_empty());
    let mut flows: Vec<_> = fx
        .store
        .iter()
        .map(|b| (b.contact_uri.as_str(), b.reg_id, b.flow_id.as_deref()))
        .collect();
    flows.sort();
    assert_eq!(
        flows,
        [(uri, Some(1), Some("tcp-1")), (uri, Some(2), Some("tcp-2"))]
    );
    let mut contacts_listed = contacts(&registration.response);
    contacts_listed.sort();
    assert_eq!(contacts_listed, [listed(3600, 1), listed(3600, 2)]);

    // Refreshing one flow leaves the other as it was.
    fx.advance_secs(100);
    fx.source = source("203.0.113.7:40000", "tcp-1");
    let registration = fx.register(&mut first);
    assert!(removed(&registration).is_empty());
    let mut contacts_listed = contacts(&registration.response);
    contacts_listed.sort();
    assert_eq!(contacts_listed, [listed(3500, 2), listed(3600, 1)]);

    // Unregistering one flow deletes that flow's binding only.
    let registration = fx.register(&mut on_flow(1).contact(&format!("{};expires=0", flow(1))));
    assert_eq!(
        registration.changes,
        [BindingChange::Delete {
            endpoint_pk: 1,
            contact_uri: uri.to_owned(),
            reg_id: Some(1),
        }]
    );
    assert_eq!(fx.store.len(), 1);
    assert_eq!(fx.store[0].reg_id, Some(2));
    assert_eq!(fx.store[0].flow_id.as_deref(), Some("tcp-2"));
    assert_eq!(contacts(&registration.response), [listed(3500, 2)]);
}

#[test]
fn same_flow_key_refresh_on_the_same_flow_keeps_one_binding() {
    let mut fx = Fixture::new();
    let contact =
        format!("<sip:alice@192.168.1.10:5060;transport=tcp;ob>;+sip.instance={INSTANCE};reg-id=1");
    let mut req = alice().header("Supported: outbound").contact(&contact);
    fx.register(&mut req);
    fx.advance_secs(100);
    let registration = fx.register(&mut req);
    assert!(removed(&registration).is_empty());
    assert_eq!(fx.store.len(), 1);
    assert_eq!(fx.store[0].updated_at_ms, fx.now);
}

#[test]
fn reg_id_without_supported_outbound_is_a_plain_instance_binding() {
    let mut fx = Fixture::new();
    let contact = format!("{PHONE};+sip.instance={INSTANCE};reg-id=1");
    let registration = fx.register(&mut alice().contact(&contact));
    assert_eq!(fx.store[0].reg_id, None);
    assert!(header_values(&registration.response, "Require").is_empty());
    assert_eq!(
        contacts(&registration.response),
        [format!("{PHONE};expires=3600;+sip.instance={INSTANCE}")]
    );
}

#[test]
fn instance_without_reg_id_follows_the_device_across_contact_changes() {
    let mut fx = Fixture::new();
    fx.register(&mut alice().contact(&format!("{PHONE};+sip.instance={INSTANCE}")));
    // Same device, new address and a new Call-ID (after a reboot, say).
    fx.register(
        &mut alice()
            .call_id("rebooted")
            .contact(&format!("{LAPTOP};+sip.instance={INSTANCE}")),
    );
    assert_eq!(uris(&fx), ["sip:alice@10.0.0.5:5062"]);
}

#[test]
fn outbound_behind_a_first_hop_without_outbound_is_refused_with_439() {
    let mut fx = Fixture::new();
    let contact = format!("{PHONE};+sip.instance={INSTANCE};reg-id=1");
    let mut req = alice().header("Supported: outbound").contact(&contact);
    req.vias.insert(
        0,
        "SIP/2.0/UDP edge.example.com;branch=z9hG4bK-edge".to_owned(),
    );
    assert_eq!(fx.refused(&mut req.clone()).status, 439);
    // With `ob` in the edge proxy's Path, outbound applies.
    let mut req = req.header("Path: <sip:edge.example.com;lr;ob>");
    let registration = fx.register(&mut req);
    assert_eq!(fx.store[0].reg_id, Some(1));
    assert_eq!(
        header_values(&registration.response, "Require"),
        ["outbound"]
    );
}

#[test]
fn two_adding_contacts_with_a_reg_id_is_a_bad_request() {
    let mut fx = Fixture::new();
    let mut req = alice()
        .header("Supported: outbound")
        .contact(&format!("{PHONE};+sip.instance={INSTANCE};reg-id=1"))
        .contact(LAPTOP);
    assert_eq!(fx.refused(&mut req).status, 400);
}

#[test]
fn path_is_stored_and_echoed_in_order_when_supported() {
    let mut fx = Fixture::new();
    let mut req = alice()
        .header("Supported: path")
        .header("Path: <sip:p1.example.com;lr>")
        .header("Path: <sip:p2.example.com;lr>,\r\n <sip:p3.example.com;lr>")
        .contact(PHONE);
    req.vias
        .insert(0, "SIP/2.0/UDP p1.example.com;branch=z9hG4bK-p1".to_owned());
    let registration = fx.register(&mut req);
    // The folded line break is flattened.
    let path = "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>,   <sip:p3.example.com;lr>";
    assert_eq!(fx.store[0].path.as_deref(), Some(path));
    assert_eq!(header_values(&registration.response, "Path"), [path]);
    assert!(header_values(&registration.response, "Supported")[0].contains("path"));
}

#[test]
fn path_is_stored_but_not_echoed_without_supported_path() {
    let mut fx = Fixture::new();
    let mut req = alice()
        .header("Path: <sip:p1.example.com;lr>")
        .contact(PHONE);
    let registration = fx.register(&mut req);
    assert_eq!(fx.store[0].path.as_deref(), Some("<sip:p1.example.com;lr>"));
    assert!(header_values(&registration.response, "Path").is_empty());
}

#[test]
fn malformed_requests_are_bad_requests() {
    let mut fx = Fixture::new();
    for req in [
        alice().contact("<sip:alice@host;expires=5"),
        alice().contact("<sip:alice@10.0.0.1>;expires=soon"),
        alice().contact("<sip:alice@10.0.0.1>;q=2"),
        alice().contact(PHONE).header("Expires: soon"),
        alice().contact(PHONE).header("Expires: 99999999999"),
        alice().header("Require: pa th"),
    ] {
        let response = fx.send(&req, None).unwrap_err();
        assert_eq!(response.status, 400, "{}", req.text(None));
    }
    // Checked once authenticated.
    let response = fx.refused(&mut alice().contact(PHONE).header("Supported: a b"));
    assert_eq!(response.status, 400);
    // Without a Call-ID.
    let text = alice()
        .contact(PHONE)
        .text(None)
        .replace("Call-ID: call-alice\r\n", "");
    let message = sip_message::Message::parse_slice(text.as_bytes()).unwrap();
    assert_eq!(fx.send_message(&message).unwrap_err().status, 400);
    // Not a REGISTER.
    let text = alice().text(None).replace("REGISTER", "OPTIONS");
    let message = sip_message::Message::parse_slice(text.as_bytes()).unwrap();
    let response = fx.send_message(&message).unwrap_err();
    assert_eq!(response.status, 405);
    assert_eq!(header_values(&response, "Allow"), ["REGISTER"]);
}

#[test]
fn unknown_required_extensions_are_refused_with_420() {
    let mut fx = Fixture::new();
    let response = fx
        .send(&alice().header("Require: path, foo, gruu"), None)
        .unwrap_err();
    assert_eq!(response.status, 420);
    assert_eq!(header_values(&response, "Unsupported"), ["foo, gruu"]);
}

#[test]
fn the_response_to_a_retransmitted_request_is_identical() {
    let mut fx = Fixture::new();
    let req = alice().contact(PHONE);
    let first = fx.send(&req, None).unwrap_err();
    let second = fx.send(&req, None).unwrap_err();
    assert_eq!(parse(&first).to_tag(), parse(&second).to_tag());
}

#[test]
fn commit_failure_answers_500_or_a_new_challenge() {
    let mut fx = Fixture::new();
    let message = alice().contact(PHONE).message(None);
    let response = fx.registrar.commit_failed(&message);
    assert_eq!(response.status, 500);
    assert!(parse(&response).to_tag().is_some());
    // The credentials changed under the commit.
    let response = fx.registrar.challenge(&message, fx.now);
    assert_eq!(response.status, 401);
    let offers = challenges(&response);
    assert_eq!(offers.len(), fx.registrar.config().digest_algorithms.len());
    assert!(offers.iter().all(|o| !o.stale));
}

#[test]
fn expiry_helper_finds_expired_bindings_and_the_next_deadline() {
    let mut fx = Fixture::new();
    fx.register(&mut alice().contact(PHONE).header("Expires: 60"));
    fx.register(&mut alice().call_id("2").contact(LAPTOP).header("Expires: 120"));
    fx.register(
        &mut Req::new("bob")
            .contact("<sip:bob@10.0.0.7>")
            .header("Expires: 90"),
    );
    let store = &fx.store;
    assert_eq!(expired_bindings(store, T0).count(), 0);
    assert_eq!(next_expiry_ms(store, T0), Some(T0 + 60_000));
    let at = T0 + 60_000;
    let expired: Vec<_> = expired_bindings(store, at)
        .map(|b| b.contact_uri.as_str())
        .collect();
    assert_eq!(expired, ["sip:alice@192.168.1.10:5060;transport=tcp"]);
    assert_eq!(next_expiry_ms(store, at), Some(T0 + 90_000));
    assert_eq!(next_expiry_ms(store, T0 + 120_000), None);
    assert_eq!(expired_bindings(store, T0 + 120_000).count(), 3);
}

#[test]
fn different_users_have_separate_bindings() {
    let mut fx = Fixture::new();
    fx.register(&mut alice().contact(PHONE));
    let registration = fx.register(&mut Req::new("bob").contact("<sip:bob@10.0.0.7>"));
    assert_eq!(
        contacts(&registration.response),
        ["<sip:bob@10.0.0.7>;expires=3600"]
    );
    assert_eq!(fx.store.len(), 2);
}
