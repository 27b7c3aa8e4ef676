//! RFC 4475 torture messages a proxy and registrar must answer, sent to the real `sipd` over
//! UDP and TCP: `bext01` (420 listing the unsupported Proxy-Require tags), `unkscm` (416),
//! `unksm2` (400: a REGISTER whose To is not a SIP AOR), `zeromf` (483), `badvers` (505).

mod common;

use common::sip::SipClient;
use common::Sandbox;
use sip_message::HeaderName;

fn corpus(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../sip-message/tests/torture/{name}.sip",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

#[tokio::test]
async fn torture_messages_get_their_answers_over_udp_and_tcp() {
    for transport in ["udp", "tcp"] {
        // A server each: the same message over the other transport would be a
        // retransmission of the first (same branch and sent-by).
        let sandbox = Sandbox::new().await;
        let server = sandbox.serve().await;
        let mut client = SipClient::connect(transport, server.sip_addr(transport)).await;
        for (name, status) in [
            ("bext01", 420),
            ("unkscm", 416),
            ("unksm2", 400),
            ("zeromf", 483),
            ("badvers", 505),
        ] {
            client.send(&corpus(name)).await;
            let response = client.recv().await;
            assert_eq!(response.status(), Some(status), "{name} over {transport}");
            if name == "bext01" {
                let unsupported =
                    String::from_utf8_lossy(response.header(HeaderName::Unsupported).unwrap())
                        .into_owned();
                assert_eq!(
                    unsupported, "noProxiesSupportThis, norDoAnyProxiesSupportThis",
                    "a proxy lists the Proxy-Require tags"
                );
            }
        }
    }
}
