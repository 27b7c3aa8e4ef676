//! Parsing throughput for the registrar's hot path (see docs/PERFORMANCE.md).
//!
//! `cargo bench -p sip-message --bench parse`

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sip_message::auth::Credentials;
use sip_message::framer::{Frame, FramerConfig, StreamFramer};
use sip_message::{HeaderName, Message};

/// A REGISTER as a softphone sends it after a 401 (RFC 5626 outbound, SHA-256 digest).
const REGISTER: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.10:49152;branch=z9hG4bK-524287-1---7c2b0b2e5f0d8a1c;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=9a8b7c6d\r\n\
To: \"Alice\" <sip:alice@example.com>\r\n\
Call-ID: 3c26700f4e5a1b2c9d8e7f6a5b4c3d2e@192.0.2.10\r\n\
CSeq: 2 REGISTER\r\n\
Contact: <sip:alice@192.0.2.10:49152;transport=tcp;ob>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1;expires=3600\r\n\
Expires: 3600\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, SUBSCRIBE, NOTIFY, REFER, INFO, UPDATE\r\n\
Supported: path, outbound, gruu, replaces\r\n\
User-Agent: Linphone/5.2.0 (belle-sip/5.2.0)\r\n\
Authorization: Digest username=\"alice\", realm=\"example.com\", \
nonce=\"ZmQ5YjM0ZTMtNzY0Mi00YjZhLWE3ODEtMTZhODk0ZjY2YjM4\", uri=\"sip:example.com\", \
response=\"4f2b1d5c9a7e3b8d6c0f1e2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e\", \
algorithm=SHA-256, cnonce=\"7b3f9c2e1a\", qop=auth, nc=00000001, opaque=\"b64c2f1e\"\r\n\
Content-Length: 0\r\n\
\r\n";

/// An INVITE with an audio+video SDP offer.
const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.10:49152;branch=z9hG4bK-524287-1---a1b2c3d4e5f60718;rport\r\n\
Max-Forwards: 70\r\n\
Route: <sip:proxy.example.com;transport=tcp;lr>\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=9a8b7c6d\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: 5d8e7f6a5b4c3d2e3c26700f4e5a1b2c@192.0.2.10\r\n\
CSeq: 21 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:49152;transport=tcp;ob>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, SUBSCRIBE, NOTIFY, REFER, INFO, UPDATE\r\n\
Supported: replaces, outbound, gruu, 100rel\r\n\
User-Agent: Linphone/5.2.0 (belle-sip/5.2.0)\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 498\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=Talk\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
m=audio 7078 RTP/AVP 96 97 98 0 8 101\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\n\
a=rtpmap:97 speex/16000\r\n\
a=rtpmap:98 speex/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=rtcp-fb:* trr-int 1000\r\n\
m=video 9078 RTP/AVP 96 97\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtpmap:97 H264/90000\r\n\
a=fmtp:97 profile-level-id=42801F\r\n\
a=rtcp-fb:* ccm tmmbr\r\n";

/// The reads the registrar does on every REGISTER (and a proxy on every request).
fn read_registrar_fields(message: &Message) {
    let via = message.top_via().expect("Via");
    black_box(via.branch());
    black_box(message.from_tag());
    black_box(message.to().expect("To").uri());
    black_box(message.call_id().expect("Call-ID"));
    black_box(message.cseq().expect("CSeq"));
    if let Some(contact) = message.contacts().next() {
        black_box(contact.expect("Contact"));
    }
    black_box(message.expires().expect("Expires"));
    if let Some(value) = message.header(HeaderName::Authorization) {
        black_box(Credentials::parse(value).expect("Authorization"));
    }
}

fn parse_benches(c: &mut Criterion) {
    check_samples();
    for (name, bytes) in [("register", REGISTER), ("invite", INVITE)] {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(1));
        let input = Bytes::from_static(bytes);
        group.bench_function("parse", |b| {
            b.iter(|| Message::parse(black_box(input.clone())).expect("parse"))
        });
        group.bench_function("parse_and_read", |b| {
            b.iter(|| {
                let message = Message::parse(black_box(input.clone())).expect("parse");
                read_registrar_fields(&message);
                message
            })
        });
        group.finish();
    }

    // Each read on its own, to see where `parse_and_read` spends its time.
    let register = Message::parse(Bytes::from_static(REGISTER)).expect("parse");
    let mut views = c.benchmark_group("register_view");
    views.bench_function("top_via_branch", |b| {
        b.iter(|| black_box(&register).top_via().expect("Via").branch())
    });
    views.bench_function("from_tag", |b| b.iter(|| black_box(&register).from_tag()));
    views.bench_function("to", |b| b.iter(|| black_box(&register).to().expect("To")));
    views.bench_function("call_id", |b| {
        b.iter(|| black_box(&register).call_id().expect("Call-ID"))
    });
    views.bench_function("cseq", |b| {
        b.iter(|| black_box(&register).cseq().expect("CSeq"))
    });
    views.bench_function("first_contact", |b| {
        b.iter(|| black_box(&register).contacts().next().expect("Contact"))
    });
    views.bench_function("expires", |b| {
        b.iter(|| black_box(&register).expires().expect("Expires"))
    });
    views.finish();

    let authorization = Message::parse(Bytes::from_static(REGISTER))
        .expect("parse")
        .header(HeaderName::Authorization)
        .expect("Authorization")
        .to_vec();
    c.bench_function("authorization/digest_parse", |b| {
        b.iter(|| Credentials::parse(black_box(&authorization)).expect("digest"))
    });
}

/// 64 messages (REGISTER and INVITE alternating) with keep-alive pings, as
/// one TCP read.
fn framer_benches(c: &mut Criterion) {
    let mut stream = Vec::new();
    for index in 0..64 {
        stream.extend_from_slice(if index % 2 == 0 { REGISTER } else { INVITE });
        if index % 16 == 15 {
            stream.extend_from_slice(b"\r\n\r\n");
        }
    }
    let mut group = c.benchmark_group("framer");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("pipelined_64_messages", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&stream[..]),
            |buf| {
                let mut framer = StreamFramer::new(FramerConfig::default());
                let mut messages = 0;
                while let Some(frame) = framer.next_frame(buf).expect("frame") {
                    if let Frame::Message(message) = frame {
                        black_box(message);
                        messages += 1;
                    }
                }
                assert_eq!(messages, 64);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// The samples must be what they claim to be, or the figures mean nothing.
fn check_samples() {
    for bytes in [REGISTER, INVITE] {
        let message = Message::parse(Bytes::from_static(bytes)).expect("sample parses");
        assert!(message.validate().is_ok(), "sample is a valid request");
        assert_eq!(
            message.as_bytes().len(),
            bytes.len(),
            "Content-Length covers the body"
        );
        read_registrar_fields(&message);
    }
}

criterion_group! {
    name = benches;
    // Shorter than the defaults so the whole file runs in about a minute.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = parse_benches, framer_benches
}
criterion_main!(benches);
