//! Binding expiry for the shell's timer: a binding is live while `now_ms < expires_at_ms`.

use sipd_store::Binding;

/// The bindings that have expired at `now_ms` (to delete and drop from the location service).
pub fn expired_bindings(bindings: &[Binding], now_ms: i64) -> impl Iterator<Item = &Binding> {
    bindings.iter().filter(move |b| b.expires_at_ms <= now_ms)
}

/// When the next live binding expires: the deadline for the shell's expiry timer.
pub fn next_expiry_ms(bindings: &[Binding], now_ms: i64) -> Option<i64> {
    bindings
        .iter()
        .map(|b| b.expires_at_ms)
        .filter(|&at| at > now_ms)
        .min()
}
