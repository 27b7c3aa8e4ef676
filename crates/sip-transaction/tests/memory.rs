//! Memory of the transaction layer through a REGISTER storm, measured by a counting allocator:
//! what a completed non-INVITE server transaction holds while Timer J runs, and that the
//! layer gives its memory back once the storm's transactions are over.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_message::{FlowId, Message};
use sip_transaction::{Config, Output, TransactionLayer};

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// A REGISTER as sipp sends it, with its own branch.
fn register(n: usize) -> Message {
    let text = format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-{n:08}-storm;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:user{n}@example.com>;tag={n}\r\n\
         To: <sip:user{n}@example.com>\r\n\
         Call-ID: {n}-storm@192.0.2.1\r\n\
         CSeq: 2 REGISTER\r\n\
         Contact: <sip:user{n}@192.0.2.1:5060>;expires=3600\r\n\
         Authorization: Digest username=\"user{n}\",realm=\"example.com\",\
         nonce=\"0123456789abcdef0123456789abcdef\",uri=\"sip:example.com\",\
         response=\"0123456789abcdef0123456789abcdef\",algorithm=MD5,\
         cnonce=\"abcdef\",qop=auth,nc=00000001\r\n\
         Content-Length: 0\r\n\r\n"
    );
    Message::parse(Bytes::from(text)).unwrap()
}

fn ok_for(request: &Message) -> Message {
    let bytes = request
        .response(200)
        .to_tag("server-tag")
        .header("Contact", "<sip:user@192.0.2.1:5060>;expires=3600")
        .build_bytes();
    Message::parse(bytes).unwrap()
}

const FLOW: FlowId = FlowId::Udp(SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(192, 0, 2, 1),
    5060,
)));

#[test]
fn a_register_storm_costs_little_per_transaction_and_is_given_back() {
    const STORM: usize = 50_000;
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Config::default()).unwrap();
    let before = live_bytes();
    for n in 0..STORM {
        layer.handle_message(register(n), FLOW, t0).unwrap();
        while let Some(output) = layer.poll_output() {
            if let Output::Request {
                transaction,
                request,
                ..
            } = output
            {
                let response = ok_for(&request);
                drop(request);
                layer.send_response(transaction, response, t0).unwrap();
            }
        }
    }
    assert_eq!(layer.len(), STORM);
    let per_transaction = (live_bytes() - before) / STORM as isize;
    println!("completed REGISTER transaction held for Timer J: {per_transaction} B");
    // Its table slot, key, timer entry and 200 OK (~300 bytes here); not the request.
    assert!(
        per_transaction < 1_200,
        "{per_transaction} B per transaction"
    );

    layer.handle_timeout(t0 + Duration::from_secs(33));
    while layer.poll_output().is_some() {}
    assert_eq!(layer.len(), 0);
    let left = live_bytes() - before;
    println!("after Timer J: {left} B still held");
    // The tables shrink back to their floor (room for a few thousand transactions, ~2 MB),
    // not to the storm's peak (~57,000 slots, ~25 MB).
    assert!(left < 4 * 1024 * 1024, "{left} B left after the storm");
}
