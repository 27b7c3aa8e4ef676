//! RFC 3263 resolution against a DNS server on 127.0.0.1 that the test runs: transport choice
//! (parameter, NAPTR, SRV, defaults), SRV priority order, A/AAAA fallback and default ports,
//! numeric hosts without a query, and the errors.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, NAPTR, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use sipd_transport::{Destination, ResolveError, Resolver, ResolverConfig, Target, Transport};
use tokio::net::UdpSocket;

/// Generous: the machine may be busy compiling; a passing test never waits this long.
const WAIT: Duration = Duration::from_secs(10);

fn name(text: &str) -> Name {
    Name::from_str(text).unwrap()
}

fn a(owner: &str, ip: [u8; 4]) -> Record {
    Record::from_rdata(name(owner), 60, RData::A(A(Ipv4Addr::from(ip))))
}

fn aaaa(owner: &str, ip: Ipv6Addr) -> Record {
    Record::from_rdata(name(owner), 60, RData::AAAA(AAAA(ip)))
}

fn srv(owner: &str, priority: u16, port: u16, target: &str) -> Record {
    let data = SRV::new(priority, 0, port, name(target));
    Record::from_rdata(name(owner), 60, RData::SRV(data))
}

fn naptr(owner: &str, order: u16, preference: u16, service: &str, replacement: &str) -> Record {
    let data = NAPTR::new(
        order,
        preference,
        b"S".to_vec().into_boxed_slice(),
        service.as_bytes().to_vec().into_boxed_slice(),
        Vec::new().into_boxed_slice(),
        name(replacement),
    );
    Record::from_rdata(name(owner), 60, RData::NAPTR(data))
}

/// The zone every test resolves in.
fn zone() -> Vec<Record> {
    vec![
        // SRV for TCP and UDP (none for TLS), out of priority order.
        srv("_sip._udp.srv.test.", 20, 5070, "b.srv.test."),
        srv("_sip._udp.srv.test.", 10, 5080, "a.srv.test."),
        srv("_sip._tcp.srv.test.", 10, 5090, "a.srv.test."),
        a("a.srv.test.", [127, 0, 0, 1]),
        a("b.srv.test.", [127, 0, 0, 2]),
        a("srv.test.", [127, 0, 0, 99]),
        // No SRV: A and AAAA of the host itself.
        a("plain.test.", [127, 0, 0, 5]),
        aaaa("plain.test.", Ipv6Addr::LOCALHOST),
        // NAPTR prefers TCP; its UDP rule has a worse preference, its TLS one a later order.
        naptr("naptr.test.", 10, 20, "SIP+D2U", "_sip._udp.naptr.test."),
        naptr("naptr.test.", 10, 10, "SIP+D2T", "_sip._tcp.naptr.test."),
        naptr("naptr.test.", 20, 10, "SIPS+D2T", "_sips._tcp.naptr.test."),
        naptr("naptr.test.", 5, 10, "E2U+sip", "ignored.naptr.test."),
        srv("_sip._tcp.naptr.test.", 1, 5066, "t.naptr.test."),
        srv("_sip._udp.naptr.test.", 1, 5067, "u.naptr.test."),
        srv("_sips._tcp.naptr.test.", 1, 5068, "s.naptr.test."),
        a("t.naptr.test.", [127, 0, 0, 11]),
        a("u.naptr.test.", [127, 0, 0, 12]),
        a("s.naptr.test.", [127, 0, 0, 13]),
    ]
}

/// A DNS server on 127.0.0.1 answering from `records` (NXDOMAIN for names it lacks, SERVFAIL
/// for the `broken` ones), and the questions it was asked.
struct DnsServer {
    addr: SocketAddr,
    questions: Arc<Mutex<Vec<(String, RecordType)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    async fn start(records: Vec<Record>, broken: &[&str]) -> DnsServer {
        let broken: Vec<Name> = broken.iter().map(|text| name(text)).collect();
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let questions = Arc::new(Mutex::new(Vec::new()));
        let asked = questions.clone();
        let task = tokio::spawn(async move {
            let mut buffer = vec![0; 4096];
            loop {
                let (len, from) = socket.recv_from(&mut buffer).await.unwrap();
                let query = Message::from_vec(&buffer[..len]).unwrap();
                let question = query.queries[0].clone();
                asked
                    .lock()
                    .unwrap()
                    .push((question.name().to_ascii(), question.query_type()));
                let mut response = Message::response(query.metadata.id, OpCode::Query);
                response.metadata.authoritative = true;
                response.metadata.recursion_desired = query.metadata.recursion_desired;
                response.add_query(question.clone());
                response.add_answers(
                    records
                        .iter()
                        .filter(|record| {
                            record.name == *question.name()
                                && record.record_type() == question.query_type()
                        })
                        .cloned(),
                );
                // A name exists if it or a name below it has records.
                if !records
                    .iter()
                    .any(|record| question.name().zone_of(&record.name))
                {
                    response.metadata.response_code = ResponseCode::NXDomain;
                }
                if broken.contains(question.name()) {
                    response.metadata.response_code = ResponseCode::ServFail;
                }
                socket
                    .send_to(&response.to_vec().unwrap(), from)
                    .await
                    .unwrap();
            }
        });
        DnsServer {
            addr,
            questions,
            task,
        }
    }

    fn resolver(&self) -> Resolver {
        Resolver::new(&ResolverConfig {
            nameservers: vec![self.addr],
            timeout: WAIT,
        })
        .unwrap()
    }

    fn questions(&self) -> Vec<(String, RecordType)> {
        self.questions.lock().unwrap().clone()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn target(host: &str) -> Target {
    Target {
        host: host.to_owned(),
        port: None,
        transport: None,
        secure: false,
    }
}

fn destination(transport: Transport, addr: &str, server_name: Option<&str>) -> Destination {
    Destination {
        transport,
        addr: addr.parse().unwrap(),
        server_name: server_name.map(str::to_owned),
    }
}

#[tokio::test]
async fn srv_records_give_the_servers_by_transport_then_priority() {
    let dns = DnsServer::start(zone(), &[]).await;
    let resolver = dns.resolver();
    // From another task, as the proxy will (the future is Send).
    let resolved = tokio::spawn(async move { resolver.resolve(&target("srv.test")).await })
        .await
        .unwrap()
        .unwrap();
    // The server name is the URI's domain, not the SRV target (RFC 5922).
    let name = Some("srv.test");
    assert_eq!(
        resolved,
        [
            destination(Transport::Tcp, "127.0.0.1:5090", name),
            destination(Transport::Udp, "127.0.0.1:5080", name),
            destination(Transport::Udp, "127.0.0.2:5070", name),
        ]
    );
    let questions = dns.questions();
    for srv_name in [
        "_sips._tcp.srv.test.",
        "_sip._tcp.srv.test.",
        "_sip._udp.srv.test.",
    ] {
        assert!(
            questions.contains(&(srv_name.to_owned(), RecordType::SRV)),
            "{questions:?}"
        );
    }
    assert!(questions.contains(&("srv.test.".to_owned(), RecordType::NAPTR)));
}

#[tokio::test]
async fn without_srv_the_hosts_addresses_on_the_default_port() {
    let dns = DnsServer::start(zone(), &[]).await;
    let resolver = dns.resolver();
    let name = Some("plain.test");
    // A trailing dot names the same domain.
    assert_eq!(
        resolver.resolve(&target("plain.test.")).await.unwrap(),
        [
            destination(Transport::Udp, "127.0.0.5:5060", name),
            destination(Transport::Udp, "[::1]:5060", name),
        ]
    );
}

#[tokio::test]
async fn sips_uses_tls_its_srv_name_and_port_5061() {
    let dns = DnsServer::start(zone(), &[]).await;
    let resolver = dns.resolver();
    let secure = Target {
        secure: true,
        ..target("plain.test")
    };
    let name = Some("plain.test");
    assert_eq!(
        resolver.resolve(&secure).await.unwrap(),
        [
            destination(Transport::Tls, "127.0.0.5:5061", name),
            destination(Transport::Tls, "[::1]:5061", name),
        ]
    );
    let srv_questions: Vec<String> = dns
        .questions()
        .into_iter()
        .filter(|(_, kind)| *kind == RecordType::SRV)
        .map(|(name, _)| name)
        .collect();
    assert_eq!(srv_questions, ["_sips._tcp.plain.test."]);
}

#[tokio::test]
async fn the_transport_parameter_and_an_explicit_port_are_honoured() {
    let dns = DnsServer::start(zone(), &[]).await;
    let resolver = dns.resolver();
    let name = Some("srv.test");
    let tcp = Target {
        transport: Some(Transport::Tcp),
        ..target("srv.test")
    };
    assert_eq!(
        resolver.resolve(&tcp).await.unwrap(),
        [destination(Transport::Tcp, "127.0.0.1:5090", name)]
    );
    // TLS has no SRV records there: the host's own address on 5061.
    let tls = Target {
        transport: Some(Transport::Tls),
        ..target("srv.test")
    };
    assert_eq!(
        resolver.resolve(&tls).await.unwrap(),
        [destination(Transport::Tls, "127.0.0.99:5061", name)]
    );
    // `transport=tcp` in a sips: URI means TLS.
    let sips_tcp = Target {
        secure: true,
        ..tcp.clone()
    };
    assert_eq!(
        resolver.resolve(&sips_tcp).await.unwrap(),
        [destination(Transport::Tls, "127.0.0.99:5061", name)]
    );

    // An explicit port skips NAPTR and SRV: UDP to the host's addresses.
    let questions_before = dns.questions().len();
    let with_port = Target {
        port: Some(5070),
        ..target("srv.test")
    };
    assert_eq!(
        resolver.resolve(&with_port).await.unwrap(),
        [destination(Transport::Udp, "127.0.0.99:5070", name)]
    );
    let asked_since = &dns.questions()[questions_before..];
    assert!(
        asked_since
            .iter()
            .all(|(_, kind)| matches!(kind, RecordType::A | RecordType::AAAA)),
        "{asked_since:?}"
    );
}

#[tokio::test]
async fn naptr_records_choose_the_transports() {
    let dns = DnsServer::start(zone(), &[]).await;
    let resolver = dns.resolver();
    let name = Some("naptr.test");
    // The lowest order with a SIP service, by preference; later orders are not considered.
    assert_eq!(
        resolver.resolve(&target("naptr.test")).await.unwrap(),
        [
            destination(Transport::Tcp, "127.0.0.11:5066", name),
            destination(Transport::Udp, "127.0.0.12:5067", name),
        ]
    );
    // A sips: URI takes only SIPS+D2T.
    let secure = Target {
        secure: true,
        ..target("naptr.test")
    };
    assert_eq!(
        resolver.resolve(&secure).await.unwrap(),
        [destination(Transport::Tls, "127.0.0.13:5068", name)]
    );
}

#[tokio::test]
async fn ip_addresses_need_no_query() {
    let dns = DnsServer::start(zone(), &[]).await;
    let resolver = dns.resolver();
    let cases = [
        (target("127.0.0.9"), "udp", "127.0.0.9:5060"),
        (target("::1"), "udp", "[::1]:5060"),
        (target("[::1]"), "udp", "[::1]:5060"),
        (
            Target {
                secure: true,
                ..target("127.0.0.9")
            },
            "tls",
            "127.0.0.9:5061",
        ),
        (
            Target {
                port: Some(5080),
                transport: Some(Transport::Tcp),
                ..target("127.0.0.9")
            },
            "tcp",
            "127.0.0.9:5080",
        ),
    ];
    for (target, transport, addr) in cases {
        let transport = Transport::from_token(transport).unwrap();
        assert_eq!(
            resolver.resolve(&target).await.unwrap(),
            [destination(transport, addr, None)],
            "{target:?}"
        );
    }
    assert_eq!(dns.questions(), []);
}

#[tokio::test]
async fn errors_are_clear() {
    let dns = DnsServer::start(zone(), &[]).await;
    let resolver = dns.resolver();
    assert_eq!(
        resolver.resolve(&target("missing.test")).await,
        Err(ResolveError::NoSuchDomain {
            host: "missing.test".to_owned()
        })
    );
    // The SRV name exists, its target has no address.
    let dns = DnsServer::start(
        vec![srv("_sip._udp.empty.test.", 1, 5060, "nowhere.test.")],
        &[],
    )
    .await;
    assert_eq!(
        dns.resolver().resolve(&target("empty.test")).await,
        Err(ResolveError::NoRecords {
            host: "empty.test".to_owned()
        })
    );
    for (transport, secure) in [
        (Transport::Ws, false),
        (Transport::Wss, true),
        (Transport::Udp, true),
    ] {
        let unsupported = Target {
            transport: Some(transport),
            secure,
            ..target("plain.test")
        };
        assert_eq!(
            resolver.resolve(&unsupported).await,
            Err(ResolveError::Unsupported { transport, secure })
        );
    }
    for host in ["bad..name", ""] {
        assert!(matches!(
            resolver.resolve(&target(host)).await,
            Err(ResolveError::InvalidHost { .. })
        ));
    }
}

#[tokio::test]
async fn a_failing_dns_query_is_an_error_unless_other_answers_suffice() {
    let dns = DnsServer::start(zone(), &["srv.test.", "_sips._tcp.srv.test."]).await;
    let resolver = dns.resolver();
    // The domain's own question fails: nothing to go on.
    assert!(
        matches!(
            resolver.resolve(&target("srv.test")).await,
            Err(ResolveError::Dns { ref host, .. }) if host == "srv.test"
        ),
        "{:?}",
        dns.questions()
    );
    // One SRV name fails, the others answer.
    let dns = DnsServer::start(zone(), &["_sips._tcp.srv.test."]).await;
    let tcp_and_udp = dns.resolver().resolve(&target("srv.test")).await.unwrap();
    assert_eq!(
        tcp_and_udp
            .iter()
            .map(|destination| destination.transport)
            .collect::<Vec<_>>(),
        [Transport::Tcp, Transport::Udp, Transport::Udp]
    );
    // The only SRV name fails: an error, not a guess at the host's own address.
    let tls = Target {
        transport: Some(Transport::Tls),
        ..target("srv.test")
    };
    assert!(matches!(
        dns.resolver().resolve(&tls).await,
        Err(ResolveError::Dns { .. })
    ));
}

#[tokio::test]
async fn a_silent_dns_server_times_out() {
    // Reads the questions and never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let limit = Duration::from_millis(300);
    let resolver = Resolver::new(&ResolverConfig {
        nameservers: vec![silent.local_addr().unwrap()],
        timeout: limit,
    })
    .unwrap();
    let started = Instant::now();
    let outcome = tokio::time::timeout(WAIT, resolver.resolve(&target("plain.test")))
        .await
        .expect("resolve is bounded");
    assert_eq!(
        outcome,
        Err(ResolveError::Timeout {
            host: "plain.test".to_owned()
        })
    );
    assert!(started.elapsed() >= limit);
}
