//! Memory of the location service per binding: bindings are written to the store, a service
//! loads them at start, and a counting allocator measures what stays allocated.
//!
//! Two loads (one binding per AOR, ten per AOR) separate the per-AOR cost from the per-binding
//! one. Heap bytes are what Rust asked for; the allocator adds about 16 bytes per allocation,
//! counted separately. Run `cargo test --release -p sipd-registrar --test service_memory --
//! --nocapture` for the figures.

mod service_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use service_support::*;
use sipd_store::testing::fresh_store;
use sipd_store::{Binding, BindingChange};

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_ALLOCATIONS: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        LIVE_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        LIVE_ALLOCATIONS.fetch_sub(1, Ordering::Relaxed);
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

/// What the allocator reports for one allocation beyond its size (glibc: 8–16 bytes).
const ALLOCATOR_OVERHEAD: isize = 16;

/// Heap bytes held, counting the allocator's overhead.
fn held() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
        + ALLOCATOR_OVERHEAD * LIVE_ALLOCATIONS.load(Ordering::Relaxed)
}

/// A binding as a phone behind NAT on TCP with RFC 5626 outbound leaves it.
fn binding(endpoint_pk: i64, device: usize, now_ms: i64) -> Binding {
    let port = 20_000 + (endpoint_pk as usize * 7 + device) % 40_000;
    Binding {
        endpoint_pk,
        contact_uri: format!("sip:user{endpoint_pk}@192.168.{device}.23:{port};transport=tcp;ob"),
        expires_at_ms: now_ms + 3_600_000,
        q: None,
        call_id: format!("{endpoint_pk:016x}{device:016x}@192.168.1.23"),
        cseq: 42,
        user_agent: Some("Yealink SIP-T46S 66.86.0.15".to_owned()),
        received: format!("198.51.100.{}:{port}", device + 1),
        transport: "tcp".to_owned(),
        flow_id: Some(format!("tcp-{}", endpoint_pk as usize * 10 + device)),
        instance_id: Some(format!(
            "<urn:uuid:00000000-0000-4000-8000-{endpoint_pk:06}{device:06}>"
        )),
        reg_id: Some(1),
        path: None,
        // Another node's: this node keeps connection bindings of others at start.
        node_id: "node-2".to_owned(),
        updated_at_ms: now_ms,
    }
}

/// Heap held by a service that loaded `aors` endpoints with `per_aor` bindings each.
async fn held_after_load(aors: usize, per_aor: usize) -> isize {
    let store = fresh_store().await;
    let account = account(&store).await;
    let now = now_ms();
    let mut changes = Vec::with_capacity(aors * per_aor);
    for n in 0..aors {
        let endpoint = endpoint(&store, account, &format!("user{n}")).await;
        for device in 0..per_aor {
            changes.push(BindingChange::Upsert(binding(endpoint.pk, device, now)));
        }
    }
    store.apply_binding_changes(&changes).await.unwrap();
    drop(changes);
    let before = held();
    let service = start(&store, "node-1").await;
    let grown = held() - before;
    service.shutdown().await;
    grown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_take_less_than_half_a_kilobyte_each() {
    const AORS: usize = 10_000;
    let empty = held_after_load(0, 0).await;
    let one_each = held_after_load(AORS, 1).await - empty;
    let ten_each = held_after_load(AORS, 10).await - empty;
    let per_binding = (ten_each - one_each) / (9 * AORS as isize);
    let per_aor = one_each / AORS as isize - per_binding;
    let single = per_aor + per_binding;
    println!(
        "location memory: {per_binding} B per binding + {per_aor} B per AOR; \
         {single} B per binding at one per AOR; 100,000 such bindings ≈ {} MB",
        single * 100_000 / 1_000_000
    );
    assert!(single < 512, "{single} bytes per binding");
}
