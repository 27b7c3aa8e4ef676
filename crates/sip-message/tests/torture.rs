//! RFC 4475 / RFC 5118 torture messages (see `tests/torture/README.md`).
//!
//! Valid messages must parse and validate, with their fields read correctly;
//! invalid ones must fail to parse or be rejected by `Message::validate`;
//! parse → serialize is byte-identical.

use std::borrow::Cow;

use bytes::Bytes;
use sip_message::{Contact, ErrorKind, HeaderName, Host, Message, Method, RPort, Uri};

fn load(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/torture/{name}.sip", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Parses a message that must be accepted, checks the round trip and that
/// `validate` passes.
fn valid(name: &str) -> Message {
    let bytes = load(name);
    let message = Message::parse(Bytes::from(bytes.clone()))
        .unwrap_or_else(|e| panic!("{name} must parse: {e}"));
    assert_eq!(message.as_bytes(), &bytes[..], "{name}: round trip");
    message
        .validate()
        .unwrap_or_else(|e| panic!("{name} must validate: {e}"));
    message
}

/// Parses a message that is syntactically fine but semantically odd.
fn parses(name: &str) -> Message {
    let bytes = load(name);
    let message = Message::parse(Bytes::from(bytes.clone()))
        .unwrap_or_else(|e| panic!("{name} must parse: {e}"));
    assert_eq!(message.as_bytes(), &bytes[..], "{name}: round trip");
    message
}

fn parse_error(name: &str) -> ErrorKind {
    match Message::parse(Bytes::from(load(name))) {
        Ok(_) => panic!("{name} must not parse"),
        Err(e) => e.kind(),
    }
}

fn rejected(name: &str) -> (u16, ErrorKind) {
    let message = parses(name);
    let rejection = message
        .validate()
        .expect_err(&format!("{name} must be rejected"));
    (rejection.status, rejection.error.kind())
}

fn sip_uri<'a>(uri: &Uri<'a>) -> sip_message::SipUri<'a> {
    *uri.as_sip().expect("SIP URI")
}

fn contact_addrs(message: &Message) -> Vec<sip_message::ContactAddr<'_>> {
    message
        .contacts()
        .map(|c| match c.expect("contact parses") {
            Contact::Address(a) => a,
            Contact::Star => panic!("unexpected *"),
        })
        .collect()
}

// ---- RFC 4475 §3.1.1: valid messages ----

#[test]
fn wsinv() {
    let m = valid("wsinv");
    assert_eq!(m.method(), Some(Method::Invite));
    let ruri = m.request_uri().unwrap();
    let ruri = sip_uri(&ruri);
    assert_eq!(ruri.user(), Some("vivekg"));
    assert_eq!(ruri.host(), Host::Domain("chair-dnrc.example.com"));
    assert!(ruri.params().contains("unknownparam"));

    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(
        vias.iter().map(|v| v.transport()).collect::<Vec<_>>(),
        ["UDP", "TCP", "UDP"]
    );
    assert_eq!(vias[0].host(), Host::Ipv4("192.0.2.2"));
    assert_eq!(vias[0].branch(), Some("390skdjuw"));
    assert!(!vias[0].has_rfc3261_branch());
    assert_eq!(vias[1].host(), Host::Domain("spindle.example.com"));
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(vias[2].host(), Host::Ipv4("192.168.255.111"));
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(m.branch(), Some("390skdjuw"));

    assert_eq!(m.to_tag(), Some("1918181833n"));
    assert_eq!(m.from_tag(), Some("98asjd8"));
    let from = m.from().unwrap();
    assert_eq!(
        from.display_name().unwrap().text().as_ref(),
        b"J Rosenberg \\\""
    );
    assert_eq!(m.max_forwards(), Ok(Some(68)));
    let cseq = m.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    assert_eq!(m.call_id(), Ok("wsinv.ndaksdj@192.0.2.1"));
    assert_eq!(m.content_length(), Some(150));
    assert_eq!(m.body().len(), 150);
    assert!(m.body().starts_with(b"v=0\r\n"));

    let contacts = contact_addrs(&m);
    assert_eq!(contacts.len(), 1);
    assert_eq!(
        contacts[0].display_name().unwrap().text().as_ref(),
        b"Quoted string \"\""
    );
    assert_eq!(contacts[0].params().value("newparam"), Some("newvalue"));
    assert!(contacts[0].params().contains("secondparam"));
    assert_eq!(contacts[0].q(), Some(330));

    assert_eq!(
        m.headers_by_name("UnknownHeaderWithUnusualValue")
            .collect::<Vec<_>>(),
        [&b";;,,;;,;"[..]]
    );
    assert_eq!(
        m.headers_by_name("newfangledheader").next(),
        Some(&b"newfangled value\r\n continued newfangled value"[..])
    );
    assert_eq!(m.header(HeaderName::Subject), Some(&b""[..]));
    let route = m.routes().next().unwrap().unwrap();
    assert!(sip_uri(&route.uri()).lr());
    assert_eq!(
        m.content_type().unwrap().map(|t| (t.mtype, t.subtype)),
        Some(("application", "sdp"))
    );
}

#[test]
fn intmeth() {
    let m = valid("intmeth");
    let method = "!interesting-Method0123456789_*+`.%indeed'~";
    assert_eq!(m.method(), Some(Method::Other(method)));
    assert_eq!(m.cseq().unwrap().method, Method::Other(method));
    assert_eq!(m.cseq().unwrap().seq, 139122385);
    let ruri = m.request_uri().unwrap();
    let ruri = sip_uri(&ruri);
    assert_eq!(
        ruri.user(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        ruri.password(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(ruri.host(), Host::Domain("example.com"));
    assert_eq!(m.branch(), Some("z9hG4bK-.!%66*_+`'~"));
    let to = m.to().unwrap();
    assert_eq!(
        to.display_name().unwrap().text().as_ref(),
        b"BEL:\x07 NUL:\0 DEL:\x7f"
    );
    assert_eq!(
        sip_uri(&to.uri()).user(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    let from = m.from().unwrap();
    assert_eq!(
        from.display_name().unwrap().as_bytes(),
        b"token1~` token2'+_ token3*%!.-"
    );
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    let param = from.params().get("fromParam''~+*_!.-%").unwrap();
    assert_eq!(
        param.value_unquoted().unwrap().as_ref(),
        "\u{440}\u{430}\u{431}\u{43e}\u{442}\u{430}\u{44e}\u{449}\u{438}\u{439}".as_bytes()
    );
    assert_eq!(
        m.call_id(),
        Ok("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
    );
    assert_eq!(m.max_forwards(), Ok(Some(255)));
    let ext = m
        .headers_by_name("extensionHeader-!.%*+_`'~")
        .next()
        .unwrap();
    assert_eq!(ext, "\u{FEFF}\u{5927}\u{505C}\u{96FB}".as_bytes());
}

#[test]
fn esc01() {
    let m = valid("esc01");
    let ruri = m.request_uri().unwrap();
    let ruri = sip_uri(&ruri);
    assert_eq!(ruri.user(), Some("sips%3Auser%40example.com"));
    assert_eq!(
        ruri.user_unescaped().unwrap().as_ref(),
        b"sips:user@example.com"
    );
    assert_eq!(ruri.host(), Host::Domain("example.net"));
    let to = m.to().unwrap();
    assert_eq!(
        sip_uri(&to.uri()).user_unescaped().unwrap().as_ref(),
        b"user"
    );
    let from = m.from().unwrap();
    assert_eq!(
        sip_uri(&from.uri()).user_unescaped().unwrap().as_ref(),
        b"I have spaces"
    );
    assert_eq!(m.call_id(), Ok("esc01.239409asdfakjkn23onasd0-3234"));
    let contact = contact_addrs(&m)[0];
    let uri = contact.uri();
    let uri = sip_uri(&uri);
    assert_eq!(uri.user_unescaped().unwrap().as_ref(), b"caller");
    let params: Vec<_> = uri.params().iter().collect();
    assert_eq!(params[0].name, "%6C%72");
    assert_eq!(params[1].name, "n%61me");
    // value%41 is not valueA: one level of unescaping only.
    assert_eq!(
        sip_message::unescape(params[1].value.unwrap().as_bytes()).as_ref(),
        b"value%41"
    );
    assert_eq!(m.content_type().unwrap().unwrap().subtype, "sdp");
}

#[test]
fn escnull() {
    let m = valid("escnull");
    let to = m.to().unwrap();
    assert_eq!(
        sip_uri(&to.uri()).user_unescaped().unwrap().as_ref(),
        b"null-\0-null"
    );
    let contacts = contact_addrs(&m);
    assert_eq!(contacts.len(), 2);
    let users: Vec<Cow<'_, [u8]>> = contacts
        .iter()
        .map(|c| sip_uri(&c.uri()).user_unescaped().unwrap())
        .collect();
    assert_eq!(users[0].as_ref(), b"\0");
    assert_eq!(users[1].as_ref(), b"\0\0");
    assert_ne!(users[0], users[1]);
    assert_eq!(m.content_length(), Some(0));
}

#[test]
fn esc02() {
    let m = valid("esc02");
    assert_eq!(m.method(), Some(Method::Other("RE%47IST%45R")));
    assert_ne!(m.method(), Some(Method::Register));
    assert_eq!(
        m.to().unwrap().display_name().unwrap().text().as_ref(),
        b"%Z%45"
    );
    assert_eq!(contact_addrs(&m).len(), 2);
    assert_eq!(m.headers_by_name("C%6Fntact").count(), 1);
    assert_eq!(m.branch(), Some("z9hG4bK209%fzsnel234"));
}

#[test]
fn lwsdisp() {
    let m = valid("lwsdisp");
    let from = m.from().unwrap();
    assert_eq!(from.display_name().unwrap().as_bytes(), b"caller");
    assert_eq!(sip_uri(&from.uri()).user(), Some("caller"));
    assert_eq!(from.tag(), Some("323"));
}

#[test]
fn longreq() {
    let m = valid("longreq");
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 34);
    assert_eq!(vias[0].host(), Host::Domain("sip33.example.com"));
    assert_eq!(vias[32].host(), Host::Domain("sip1.example.com"));
    assert_eq!(vias[33].received(), Some("192.0.2.5"));
    assert!(vias[33].branch().unwrap().ends_with("longbranchvalue"));
    let to = m.to().unwrap();
    assert!(to.display_name().unwrap().text().ends_with(b"proportion"));
    let to_uri = to.uri();
    let to_uri = sip_uri(&to_uri);
    assert_eq!(to_uri.port(), Some(6000));
    assert!(to_uri
        .params()
        .contains("verylonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglongParameterNameWithNoValue"));
    assert!(m.from_tag().unwrap().ends_with("982424"));
    assert_eq!(m.cseq().unwrap().seq, 3882340);
    assert_eq!(m.content_length(), Some(150));
}

#[test]
fn dblreq() {
    let bytes = load("dblreq");
    let m = Message::parse(Bytes::from(bytes.clone())).unwrap();
    m.validate().unwrap();
    assert_eq!(m.method(), Some(Method::Register));
    assert_eq!(m.content_length(), Some(0));
    assert!(m.body().is_empty());
    // The trailing INVITE-looking octets are not part of the message.
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(m.as_bytes(), &bytes[..end]);
    assert!(bytes.len() > end + 400);
    assert_eq!(m.call_id(), Ok("dblreq.0ha0isndaksdj99sdfafnl3lk233412"));
    assert_eq!(m.header_count(), 8);
}

#[test]
fn semiuri() {
    let m = valid("semiuri");
    let ruri = m.request_uri().unwrap();
    let ruri = sip_uri(&ruri);
    assert_eq!(ruri.user(), Some("user;par=u%40example.net"));
    assert_eq!(
        ruri.user_unescaped().unwrap().as_ref(),
        b"user;par=u@example.net"
    );
    assert_eq!(ruri.host(), Host::Domain("example.com"));
    assert!(ruri.params().is_empty());
    assert_eq!(m.headers_named(HeaderName::Accept).count(), 1);
}

#[test]
fn transports() {
    let m = valid("transports");
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(
        vias.iter().map(|v| v.transport()).collect::<Vec<_>>(),
        ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    );
    assert_eq!(vias[3].host(), Host::Domain("t4.example.com"));
    assert_eq!(vias[3].branch(), Some("z9hG4bKasd0f3en"));
    assert_eq!(m.call_id(), Ok("transports.kijh4akdnaqjkwendsasfdj"));
}

#[test]
fn mpart01() {
    let bytes = load("mpart01");
    let m = valid("mpart01");
    assert_eq!(m.content_length(), Some(553));
    assert_eq!(m.body(), &bytes[bytes.len() - 553..]);
    assert!(m.body().contains(&0));
    assert_eq!(m.top_via().unwrap().rport(), Some(RPort::Requested));
    assert_eq!(m.top_via().unwrap().port(), Some(5070));
    let ct = m.content_type().unwrap().unwrap();
    assert!(ct.is("multipart", "mixed"));
    assert_eq!(ct.params.value("boundary"), Some("7a9cbec02ceef655"));
    assert_eq!(m.user_agent(), Some(&b"SIPimp.org/0.2.5 (curses)"[..]));
    assert_eq!(m.header(HeaderName::Identity).map(<[u8]>::len), Some(172));
    assert_eq!(m.routes().count(), 1);
}

#[test]
fn unreason() {
    let m = valid("unreason");
    assert_eq!(m.status(), Some(200));
    let reason = m.reason().unwrap();
    assert!(reason.starts_with(b"= 2**3 * 5**2 "));
    assert!(std::str::from_utf8(reason)
        .unwrap()
        .contains("\u{43d}\u{43e}"));
    assert_eq!(m.body().len(), 154);
}

#[test]
fn noreason() {
    let m = valid("noreason");
    assert_eq!(m.status(), Some(100));
    assert_eq!(m.reason(), Some(&b""[..]));
    assert_eq!(m.to_tag(), Some("902jndnke3"));
}

// ---- RFC 4475 §3.1.2: invalid messages ----

#[test]
fn badinv01() {
    assert_eq!(rejected("badinv01").0, 400);
}

#[test]
fn clerr() {
    assert_eq!(parse_error("clerr"), ErrorKind::BodyTruncated);
}

#[test]
fn ncl() {
    assert_eq!(parse_error("ncl"), ErrorKind::BadContentLength);
}

#[test]
fn scalar02() {
    let m = parses("scalar02");
    assert_eq!(m.cseq().unwrap_err().kind(), ErrorKind::NumberOutOfRange);
    assert_eq!(
        m.max_forwards().unwrap_err().kind(),
        ErrorKind::NumberOutOfRange
    );
    assert_eq!(m.expires().unwrap_err().kind(), ErrorKind::NumberOutOfRange);
    assert!(m.contacts().next().unwrap().is_err());
    assert_eq!(rejected("scalar02"), (400, ErrorKind::NumberOutOfRange));
}

#[test]
fn scalarlg() {
    let m = parses("scalarlg");
    assert_eq!(m.status(), Some(503));
    assert!(m.cseq().is_err());
    assert!(m.validate().is_err());
}

#[test]
fn quotbal() {
    let (status, kind) = rejected("quotbal");
    assert_eq!((status, kind), (400, ErrorKind::UnterminatedQuote));
}

#[test]
fn ltgtruri() {
    assert_eq!(rejected("ltgtruri"), (400, ErrorKind::BadUri));
}

#[test]
fn lwsruri() {
    assert_eq!(parse_error("lwsruri"), ErrorKind::BadStartLine);
}

#[test]
fn lwsstart() {
    assert_eq!(parse_error("lwsstart"), ErrorKind::BadStartLine);
}

#[test]
fn trws() {
    assert_eq!(parse_error("trws"), ErrorKind::BadStartLine);
}

#[test]
fn escruri() {
    let m = parses("escruri");
    let ruri = m.request_uri().unwrap();
    assert_eq!(
        sip_uri(&ruri).headers(),
        Some("Route=%3Csip:example.com%3E")
    );
    assert_eq!(rejected("escruri"), (400, ErrorKind::BadUri));
}

#[test]
fn baddate() {
    // Date does not matter to a registrar/proxy: accepted, header kept raw.
    let m = valid("baddate");
    assert_eq!(
        m.header(HeaderName::Date),
        Some(&b"Fri, 01 Jan 2010 16:00:00 EST"[..])
    );
}

#[test]
fn regbadct() {
    let m = parses("regbadct");
    assert_eq!(
        m.contacts().next().unwrap().unwrap_err().kind(),
        ErrorKind::BadUri
    );
    assert_eq!(rejected("regbadct").0, 400);
}

#[test]
fn badaspec() {
    let m = parses("badaspec");
    assert!(m.from().is_ok());
    assert_eq!(m.to().unwrap_err().kind(), ErrorKind::BadUri);
    assert_eq!(rejected("badaspec").0, 400);
}

#[test]
fn baddn() {
    // As archived the header section is not terminated.
    assert_eq!(parse_error("baddn"), ErrorKind::Incomplete);
    let mut bytes = load("baddn");
    bytes.extend_from_slice(b"\r\n");
    let m = Message::parse(Bytes::from(bytes)).unwrap();
    assert!(m.from().is_err());
    assert!(m.to().is_err());
    assert_eq!(m.validate().unwrap_err().status, 400);
}

#[test]
fn badvers() {
    let m = parses("badvers");
    assert_eq!(m.version(), b"SIP/7.0");
    assert!(!m.is_sip_2_0());
    assert_eq!(rejected("badvers"), (505, ErrorKind::BadVersion));
}

#[test]
fn mismatch01() {
    let m = parses("mismatch01");
    assert_eq!(m.method(), Some(Method::Options));
    assert_eq!(m.cseq().unwrap().method, Method::Invite);
    assert_eq!(rejected("mismatch01"), (400, ErrorKind::CSeqMismatch));
}

#[test]
fn mismatch02() {
    let m = parses("mismatch02");
    assert_eq!(m.method(), Some(Method::Other("NEWMETHOD")));
    assert_eq!(rejected("mismatch02"), (400, ErrorKind::CSeqMismatch));
}

#[test]
fn bigcode() {
    assert_eq!(parse_error("bigcode"), ErrorKind::BadStatusCode);
}

// ---- RFC 4475 §3.2, §3.3: transaction/application layer ----

#[test]
fn badbranch() {
    let m = valid("badbranch");
    assert_eq!(m.branch(), Some("z9hG4bK"));
    assert!(m.top_via().unwrap().has_rfc3261_branch());
}

#[test]
fn insuf() {
    let m = parses("insuf");
    assert_eq!(m.call_id().unwrap_err().kind(), ErrorKind::MissingHeader);
    assert!(m.from().is_err());
    assert!(m.to().is_err());
    assert_eq!(m.max_forwards(), Ok(None));
    assert_eq!(rejected("insuf"), (400, ErrorKind::MissingHeader));
}

#[test]
fn unkscm() {
    let m = valid("unkscm");
    match m.request_uri().unwrap() {
        Uri::Other(u) => {
            assert_eq!(u.scheme(), "nobodyKnowsThisScheme");
            assert_eq!(u.rest(), "totallyopaquecontent");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn novelsc() {
    let m = valid("novelsc");
    let ruri = m.request_uri().unwrap();
    assert_eq!(ruri.scheme(), "soap.beep");
    assert!(ruri.as_sip().is_none());
}

#[test]
fn unksm2() {
    let m = valid("unksm2");
    assert_eq!(m.to().unwrap().uri().scheme(), "isbn");
    assert_eq!(m.from().unwrap().uri().scheme(), "http");
    assert_eq!(m.from_tag(), Some("3234233"));
    let contact = contact_addrs(&m)[0];
    assert_eq!(contact.uri().as_str(), "name:John_Smith");
}

#[test]
fn bext01() {
    let m = valid("bext01");
    let require: Vec<_> = m.require().map(Result::unwrap).collect();
    assert_eq!(
        require,
        ["nothingSupportsThis", "nothingSupportsThisEither"]
    );
    let proxy_require: Vec<_> = m.proxy_require().map(Result::unwrap).collect();
    assert_eq!(
        proxy_require,
        ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]
    );
    assert_eq!(m.supported().count(), 0);
}

#[test]
fn invut() {
    let m = valid("invut");
    assert!(m
        .content_type()
        .unwrap()
        .unwrap()
        .is("application", "unknownformat"));
    assert_eq!(m.body().len(), 40);
}

#[test]
fn regaut01() {
    let m = valid("regaut01");
    assert_eq!(
        m.headers_named(HeaderName::Authorization)
            .collect::<Vec<_>>(),
        [&b"NoOneKnowsThisScheme opaque-data=here"[..]]
    );
    assert_eq!(m.content_length(), Some(0));
}

#[test]
fn multi01() {
    let m = parses("multi01");
    assert_eq!(m.headers_named(HeaderName::CSeq).count(), 2);
    assert_eq!(rejected("multi01"), (400, ErrorKind::DuplicateHeader));
}

#[test]
fn mcl01() {
    assert_eq!(parse_error("mcl01"), ErrorKind::ConflictingContentLength);
}

#[test]
fn bcast() {
    let m = valid("bcast");
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias[1].host(), Host::Ipv4("255.255.255.255"));
    assert_eq!(
        vias[1].host().ip(),
        Some(std::net::Ipv4Addr::BROADCAST.into())
    );
}

#[test]
fn zeromf() {
    let m = valid("zeromf");
    assert_eq!(m.max_forwards(), Ok(Some(0)));
    // A proxy answers 483 instead of forwarding.
    assert_eq!(
        m.forward().build().unwrap_err().kind(),
        ErrorKind::NumberOutOfRange
    );
}

#[test]
fn cparam01() {
    let m = valid("cparam01");
    let contact = contact_addrs(&m)[0];
    assert!(!contact.is_name_addr());
    assert!(contact.params().contains("unknownparam"));
    let uri = contact.uri();
    assert_eq!(uri.as_str(), "sip:+19725552222@gw1.example.net");
    assert!(sip_uri(&uri).params().is_empty());
}

#[test]
fn cparam02() {
    let m = valid("cparam02");
    let contact = contact_addrs(&m)[0];
    assert!(contact.params().is_empty());
    let uri = contact.uri();
    assert_eq!(
        uri.as_str(),
        "sip:+19725552222@gw1.example.net;unknownparam"
    );
    assert!(sip_uri(&uri).params().contains("unknownparam"));
}

#[test]
fn regescrt() {
    let m = valid("regescrt");
    let contact = contact_addrs(&m)[0];
    let uri = contact.uri();
    assert_eq!(
        uri.as_str(),
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    );
    assert_eq!(
        sip_uri(&uri).headers(),
        Some("Route=%3Csip:sip.example.com%3E")
    );
}

#[test]
fn sdp01() {
    let m = valid("sdp01");
    assert_eq!(
        m.header(HeaderName::Accept),
        Some(&b"text/nobodyKnowsThis"[..])
    );
}

// ---- RFC 4475 §3.4 ----

#[test]
fn inv2543() {
    let m = valid("inv2543");
    assert_eq!(m.content_length(), None);
    assert_eq!(m.body().len(), 105);
    assert_eq!(m.branch(), None);
    assert_eq!(m.from_tag(), None);
    assert_eq!(m.max_forwards(), Ok(None));
    // addr-spec form: `;user=phone` is a header parameter, not a URI one.
    let to = m.to().unwrap();
    assert_eq!(to.params().value("user"), Some("phone"));
    assert_eq!(sip_uri(&to.uri()).user_param(), None);
    let from = m.from().unwrap();
    assert_eq!(sip_uri(&from.uri()).user_param(), Some("phone"));
    let rr = m.record_routes().next().unwrap().unwrap();
    assert_eq!(sip_uri(&rr.uri()).maddr(), Some("ss1.example.com"));
}

// ---- RFC 5118 ----

#[test]
fn ipv6_good() {
    let m = valid("ipv6-good");
    let ruri = m.request_uri().unwrap();
    assert_eq!(sip_uri(&ruri).host(), Host::Ipv6("2001:db8::10"));
    assert_eq!(sip_uri(&ruri).port(), None);
    let via = m.top_via().unwrap();
    assert_eq!(via.host(), Host::Ipv6("2001:db8::9:1"));
    assert_eq!(via.port(), None);
    let contact = contact_addrs(&m)[0];
    assert_eq!(sip_uri(&contact.uri()).host(), Host::Ipv6("2001:db8::1"));
}

#[test]
fn ipv6_bad() {
    let m = parses("ipv6-bad");
    assert!(m.request_uri().is_err());
    assert_eq!(rejected("ipv6-bad").0, 400);
}

#[test]
fn port_ambiguous() {
    let m = valid("port-ambiguous");
    let ruri = m.request_uri().unwrap();
    assert_eq!(sip_uri(&ruri).host(), Host::Ipv6("2001:db8::10:5070"));
    assert_eq!(sip_uri(&ruri).port(), None);
}

#[test]
fn port_unambiguous() {
    let m = valid("port-unambiguous");
    let ruri = m.request_uri().unwrap();
    assert_eq!(sip_uri(&ruri).host(), Host::Ipv6("2001:db8::10"));
    assert_eq!(sip_uri(&ruri).port(), Some(5070));
}

#[test]
fn via_received_param_with_delim() {
    let m = valid("via-received-param-with-delim");
    let via = m.top_via().unwrap();
    assert_eq!(via.received(), Some("[2001:db8::9:255]"));
    assert_eq!(via.branch(), Some("z9hG4bKas3-111"));
}

#[test]
fn via_received_param_no_delim() {
    let m = valid("via-received-param-no-delim");
    let via = m.top_via().unwrap();
    assert_eq!(via.received(), Some("2001:db8::9:255"));
    assert_eq!(via.branch(), Some("z9hG4bKas3"));
}

#[test]
fn ipv6_in_sdp() {
    let m = valid("ipv6-in-sdp");
    assert_eq!(m.body().len(), 251);
    let sdp_address = b"c=IN IP6 2001:db8::20\r\n";
    assert!(m
        .body()
        .windows(sdp_address.len())
        .any(|w| w == sdp_address));
    assert_eq!(m.top_via().unwrap().host(), Host::Ipv6("2001:db8::20"));
}

#[test]
fn mult_ip_in_header() {
    let m = valid("mult-ip-in-header");
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].host(), Host::Ipv6("2001:db8::9:1"));
    assert_eq!(vias[0].port(), Some(6050));
    assert_eq!(vias[1].host(), Host::Ipv4("192.0.2.1"));
    assert_eq!(vias[2].host(), Host::Ipv6("2001:db8::9:255"));
    assert_eq!(vias[2].transport(), "TCP");
    assert_eq!(vias[2].received(), Some("192.0.2.200"));
}

#[test]
fn mult_ip_in_sdp() {
    let m = valid("mult-ip-in-sdp");
    assert_eq!(m.body().len(), 189);
    assert_eq!(contact_addrs(&m).len(), 1);
}

#[test]
fn ipv4_mapped_ipv6() {
    let m = valid("ipv4-mapped-ipv6");
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias[0].host(), Host::Ipv6("::ffff:192.0.2.10"));
    assert_eq!(vias[0].port(), Some(19823));
    assert_eq!(vias[1].host(), Host::Ipv6("::ffff:192.0.2.2"));
    let contact = contact_addrs(&m)[0];
    assert_eq!(
        contact.display_name().unwrap().text().as_ref(),
        b"T. desk phone"
    );
    assert_eq!(
        sip_uri(&contact.uri()).host(),
        Host::Ipv6("::ffff:192.0.2.2")
    );
    assert_eq!(m.body().len(), 245);
}

#[test]
fn ipv6_bug_abnf_3_colons() {
    // Tolerated: parsed, host kept as written; std cannot make an address of it.
    let m = valid("ipv6-bug-abnf-3-colons");
    let ruri = m.request_uri().unwrap();
    assert_eq!(sip_uri(&ruri).host(), Host::Ipv6("2001:db8:::192.0.2.1"));
    assert_eq!(sip_uri(&ruri).host().ip(), None);
}

#[test]
fn ipv6_correct_abnf_2_colons() {
    let m = valid("ipv6-correct-abnf-2-colons");
    let ruri = m.request_uri().unwrap();
    assert_eq!(sip_uri(&ruri).host(), Host::Ipv6("2001:db8::192.0.2.1"));
    assert!(sip_uri(&ruri).host().ip().is_some());
}

/// Call-ID and CSeq of every message that must parse, as printed in the files.
#[test]
fn call_id_and_cseq_of_every_accepted_message() {
    let expected = [
        ("wsinv", "wsinv.ndaksdj@192.0.2.1", 9, "INVITE"),
        ("esc01", "esc01.239409asdfakjkn23onasd0-3234", 234234, "INVITE"),
        ("escnull", "escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd", 14398234, "REGISTER"),
        ("esc02", "esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf", 29344, "RE%47IST%45R"),
        ("lwsdisp", "lwsdisp.1234abcd@funky.example.com", 60, "OPTIONS"),
        ("longreq", "longreq.onereallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallylongcallid", 3882340, "INVITE"),
        ("dblreq", "dblreq.0ha0isndaksdj99sdfafnl3lk233412", 8, "REGISTER"),
        ("semiuri", "semiuri.0ha0isndaksdj", 8, "OPTIONS"),
        ("transports", "transports.kijh4akdnaqjkwendsasfdj", 60, "OPTIONS"),
        ("mpart01", "3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..", 1, "MESSAGE"),
        ("unreason", "unreason.1234ksdfak3j2erwedfsASdf", 35, "INVITE"),
        ("noreason", "noreason.asndj203insdf99223ndf", 35, "INVITE"),
        ("badbranch", "badbranch.sadonfo23i420jv0as0derf3j3n", 8, "OPTIONS"),
        ("unkscm", "unkscm.nasdfasser0q239nwsdfasdkl34", 3923423, "OPTIONS"),
        ("novelsc", "novelsc.asdfasser0q239nwsdfasdkl34", 3923423, "OPTIONS"),
        ("unksm2", "unksm2.daksdj@hyphenated-host.example.com", 234902, "REGISTER"),
        ("bext01", "bext01.0ha0isndaksdj", 8, "OPTIONS"),
        ("invut", "invut.0ha0isndaksdjadsfij34n23d", 235448, "INVITE"),
        ("regaut01", "regaut01.0ha0isndaksdj", 9338, "REGISTER"),
        ("bcast", "bcast.0384840201234ksdfak3j2erwedfsASdf", 35, "INVITE"),
        ("zeromf", "zeromf.jfasdlfnm2o2l43r5u0asdfas", 39234321, "OPTIONS"),
        ("cparam01", "cparam01.70710@saturn.example.com", 2, "REGISTER"),
        ("cparam02", "cparam02.70710@saturn.example.com", 3, "REGISTER"),
        ("regescrt", "regescrt.k345asrl3fdbv@192.0.2.1", 14398234, "REGISTER"),
        ("sdp01", "sdp01.ndaksdj9342dasdd", 8, "INVITE"),
        ("inv2543", "inv2543.1717@ift.client.example.com", 56, "INVITE"),
        ("ipv6-good", "SSG9559905523997077@hlau_4100", 98176, "REGISTER"),
        ("port-ambiguous", "SSG9559905523997077@hlau_4100", 98176, "REGISTER"),
        ("port-unambiguous", "SSG9559905523997077@hlau_4100", 98176, "REGISTER"),
        ("via-received-param-with-delim", "SSG9559905523997077@hlau_4100", 321, "BYE"),
        ("via-received-param-no-delim", "SSG95523997077@hlau_4100", 921, "OPTIONS"),
        ("ipv6-in-sdp", "SSG9559905523997077@hlau_4100", 8612, "INVITE"),
        ("mult-ip-in-header", "997077@lau_4100", 89187, "BYE"),
        ("mult-ip-in-sdp", "SSG9559905523997077@hlau_4100", 8912, "INVITE"),
        ("ipv4-mapped-ipv6", "SSG9559905523997077@hlau_4100", 612, "INVITE"),
        ("ipv6-bug-abnf-3-colons", "G9559905523997077@hlau_4100", 689, "OPTIONS"),
        ("ipv6-correct-abnf-2-colons", "G9559905523997077@hlau_4100", 689, "OPTIONS"),
        ("baddate", "baddate.239423mnsadf3j23lj42--sedfnm234", 1392934, "INVITE"),
    ];
    for (name, call_id, seq, method) in expected {
        let m = Message::parse_slice(&load(name)).unwrap();
        assert_eq!(m.call_id(), Ok(call_id), "{name}");
        let cseq = m.cseq().unwrap();
        assert_eq!((cseq.seq, cseq.method.as_str()), (seq, method), "{name}");
        if let Some(request_method) = m.method() {
            assert_eq!(request_method, cseq.method, "{name}");
        }
    }
}

/// Every file in the corpus is covered by a test above, and nothing panics
/// when every view is exercised on every file (and on every prefix).
#[test]
fn whole_corpus_never_panics() {
    let dir = format!("{}/tests/torture", env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("sip") {
            continue;
        }
        count += 1;
        let bytes = std::fs::read(&path).unwrap();
        for end in 0..=bytes.len() {
            if let Ok(m) = Message::parse_slice(&bytes[..end]) {
                exercise(&m);
            }
        }
    }
    assert_eq!(count, 61);
}

fn exercise(m: &Message) {
    let _ = m.request_uri();
    let _ = m.vias().count();
    let _ = (m.from(), m.to(), m.cseq(), m.call_id(), m.max_forwards());
    let _ = (m.expires(), m.min_expires(), m.content_type());
    let _ = m.contacts().count();
    let _ = m.routes().chain(m.record_routes()).chain(m.paths()).count();
    let _ = m
        .supported()
        .chain(m.require())
        .chain(m.proxy_require())
        .count();
    let _ = m.validate();
    if m.is_request() {
        let _ = m.response(400).to_tag("x").build();
        let _ = m
            .forward()
            .received_from("192.0.2.1".parse().unwrap(), 5060)
            .remove_top_route()
            .build();
        let _ = m.cancel();
    }
}
