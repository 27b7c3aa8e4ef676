//! Stateless nonces: `base64url(issued_ms || seq || HMAC-SHA256(secret, issued_ms || seq || realm)[..16])`.
//!
//! Any node holding the secret can check a nonce and learn when it was issued without keeping
//! state; `seq` makes nonces issued in the same millisecond distinct, so each device's
//! nonce-count sequence is tracked on its own nonce.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// 128 bits of MAC: forging needs 2^128 guesses, and the nonce stays short.
const MAC_LEN: usize = 16;
const PAYLOAD_LEN: usize = 8 + 4;
const RAW_LEN: usize = PAYLOAD_LEN + MAC_LEN;
/// Length of the base64url text (no padding) of `RAW_LEN` bytes.
pub(crate) const NONCE_TEXT_LEN: usize = (RAW_LEN * 4).div_ceil(3);

/// What a nonce says about itself once its MAC checks out. Ordered by issue time, so the
/// replay tracker can forget the oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct NonceId {
    pub(crate) issued_ms: u64,
    pub(crate) seq: u32,
}

/// Issues and opens nonces for one realm.
pub(crate) struct NonceMinter {
    /// Keyed once; cloned per nonce to skip the key schedule.
    mac: Hmac<Sha256>,
    realm: Box<[u8]>,
    next_seq: u32,
}

impl NonceMinter {
    pub(crate) fn new(mac: Hmac<Sha256>, realm: &str) -> Self {
        NonceMinter {
            mac,
            realm: realm.as_bytes().into(),
            next_seq: 0,
        }
    }

    /// A fresh nonce issued at `now_ms`.
    pub(crate) fn mint(&mut self, now_ms: i64) -> String {
        let id = NonceId {
            issued_ms: u64::try_from(now_ms).unwrap_or(0),
            seq: self.next_seq,
        };
        self.next_seq = self.next_seq.wrapping_add(1);
        let mut raw = [0u8; RAW_LEN];
        let (payload, mac) = raw.split_at_mut(PAYLOAD_LEN);
        payload[..8].copy_from_slice(&id.issued_ms.to_be_bytes());
        payload[8..].copy_from_slice(&id.seq.to_be_bytes());
        let tag = self.tag(payload);
        mac.copy_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The nonce's issue time and sequence, if this realm's secret made it.
    pub(crate) fn open(&self, nonce: &str) -> Option<NonceId> {
        if nonce.len() != NONCE_TEXT_LEN {
            return None;
        }
        // Room for the decoder's conservative size estimate.
        let mut raw = [0u8; RAW_LEN + 3];
        let written = URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw).ok()?;
        if written != RAW_LEN {
            return None;
        }
        let (payload, rest) = raw.split_at(PAYLOAD_LEN);
        let mac = &rest[..MAC_LEN];
        let mut check = self.mac.clone();
        check.update(payload);
        check.update(&self.realm);
        check.verify_truncated_left(mac).ok()?;
        let (issued, seq) = payload.split_at(8);
        Some(NonceId {
            issued_ms: u64::from_be_bytes(issued.try_into().ok()?),
            seq: u32::from_be_bytes(seq.try_into().ok()?),
        })
    }

    fn tag(&self, payload: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(payload);
        mac.update(&self.realm);
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minter(secret: &[u8], realm: &str) -> NonceMinter {
        NonceMinter::new(Hmac::new_from_slice(secret).unwrap(), realm)
    }

    #[test]
    fn a_minted_nonce_opens_to_its_issue_time() {
        let mut nonces = minter(&[7; 32], "example.com");
        let first = nonces.mint(1_700_000_000_123);
        let second = nonces.mint(1_700_000_000_123);
        assert_eq!(first.len(), NONCE_TEXT_LEN);
        assert_ne!(first, second, "same millisecond, distinct nonces");
        let id = nonces.open(&first).unwrap();
        assert_eq!(id.issued_ms, 1_700_000_000_123);
        assert!(nonces.open(&second).unwrap() > id);
    }

    #[test]
    fn forged_or_foreign_nonces_do_not_open() {
        let mut nonces = minter(&[7; 32], "example.com");
        let nonce = nonces.mint(1000);
        // Another secret, another realm.
        assert!(minter(&[8; 32], "example.com").open(&nonce).is_none());
        assert!(minter(&[7; 32], "example.org").open(&nonce).is_none());
        // A flipped character, truncation, garbage, non-ASCII of the right length.
        let mut flipped = nonce.clone().into_bytes();
        flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
        assert!(nonces
            .open(std::str::from_utf8(&flipped).unwrap())
            .is_none());
        assert!(nonces.open(&nonce[..nonce.len() - 1]).is_none());
        assert!(nonces.open("").is_none());
        assert!(nonces.open(&"é".repeat(NONCE_TEXT_LEN / 2)).is_none());
        assert!(nonces.open(&"=".repeat(NONCE_TEXT_LEN)).is_none());
    }
}
