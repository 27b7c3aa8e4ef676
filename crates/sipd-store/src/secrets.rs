//! Credentials: auth-token encryption at rest and verification, generated ids, digest HA1.

use crate::StoreError;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use md5::Md5;
use rand::distributions::{Alphanumeric, DistString};
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const NONCE_LEN: usize = 12;
const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// An auth token as stored: ciphertext (with the AEAD tag), its nonce, and a keyed hash to
/// verify presented tokens without decrypting.
pub(crate) struct SealedToken {
    pub(crate) nonce: Vec<u8>,
    pub(crate) ciphertext: Vec<u8>,
    pub(crate) hmac: Vec<u8>,
}

pub(crate) struct TokenSealer {
    cipher: ChaCha20Poly1305,
    /// Separate key for the verifier hash, derived from the server key so one secret configures
    /// both; zero-padded to SHA-256's block size, exactly as HMAC pads a 32-byte key itself.
    hmac_key: [u8; 64],
}

impl TokenSealer {
    pub(crate) fn new(secret_key: &[u8; 32]) -> TokenSealer {
        let mut derive = Sha256::new();
        derive.update(b"sipd auth-token verifier v1\0");
        derive.update(secret_key);
        let mut hmac_key = [0u8; 64];
        hmac_key[..32].copy_from_slice(&derive.finalize());
        TokenSealer {
            cipher: ChaCha20Poly1305::new(Key::from_slice(secret_key)),
            hmac_key,
        }
    }

    /// Encrypt `token` for the account `auth_id` (bound as associated data, so a ciphertext
    /// copied onto another row does not decrypt).
    pub(crate) fn seal(&self, auth_id: &str, token: &str) -> Result<SealedToken, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: token.as_bytes(),
                    aad: auth_id.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Database("cannot encrypt auth token".into()))?;
        Ok(SealedToken {
            nonce: nonce.to_vec(),
            ciphertext,
            hmac: self.verifier(token),
        })
    }

    pub(crate) fn open(
        &self,
        auth_id: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<String, StoreError> {
        if nonce.len() != NONCE_LEN {
            return Err(StoreError::Database(
                "stored auth token nonce is malformed".into(),
            ));
        }
        let clear = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: auth_id.as_bytes(),
                },
            )
            // Wrong server key or a tampered row.
            .map_err(|_| StoreError::Database("cannot decrypt auth token".into()))?;
        String::from_utf8(clear)
            .map_err(|_| StoreError::Database("stored auth token is not UTF-8".into()))
    }

    /// Constant-time check of a presented token against the stored verifier.
    pub(crate) fn verify(&self, token: &str, stored_hmac: &[u8]) -> bool {
        self.verifier(token).ct_eq(stored_hmac).into()
    }

    fn verifier(&self, token: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new(&self.hmac_key.into());
        mac.update(token.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// `MA_` (main) or `SA_` (sub-account) + 8 upper-case alphanumerics.
pub(crate) fn account_auth_id(sub_account: bool) -> String {
    let mut rng = rand::thread_rng();
    let mut id = String::from(if sub_account { "SA_" } else { "MA_" });
    id.extend((0..8).map(|_| UPPER_ALNUM[rng.gen_range(0..UPPER_ALNUM.len())] as char));
    id
}

/// 40 random alphanumerics.
pub(crate) fn auth_token() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), 40)
}

/// A random decimal id of exactly `digits` digits (no leading zero).
pub(crate) fn numeric_id(digits: usize) -> String {
    let mut rng = rand::thread_rng();
    let mut id = String::with_capacity(digits);
    id.push(char::from(b'1' + rng.gen_range(0..9u8)));
    id.extend((1..digits).map(|_| char::from(b'0' + rng.gen_range(0..10u8))));
    id
}

/// Digest HA1 values, hex: MD5 and SHA-256 of `username:realm:password` (RFC 2617 / RFC 7616).
pub(crate) fn ha1(username: &str, realm: &str, password: &str) -> (String, String) {
    let input = format!("{username}:{realm}:{password}");
    (
        hex::encode(Md5::digest(input.as_bytes())),
        hex::encode(Sha256::digest(input.as_bytes())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_token_opens_only_for_its_account_and_key() {
        let sealer = TokenSealer::new(&[7; 32]);
        let sealed = sealer.seal("MA_AAAAAAAA", "secret-token").unwrap();
        assert_eq!(sealed.nonce.len(), NONCE_LEN);
        assert_eq!(
            sealer
                .open("MA_AAAAAAAA", &sealed.nonce, &sealed.ciphertext)
                .unwrap(),
            "secret-token"
        );
        assert!(sealer
            .open("MA_BBBBBBBB", &sealed.nonce, &sealed.ciphertext)
            .is_err());
        let other = TokenSealer::new(&[8; 32]);
        assert!(other
            .open("MA_AAAAAAAA", &sealed.nonce, &sealed.ciphertext)
            .is_err());
        assert!(sealer
            .open("MA_AAAAAAAA", &[0; 3], &sealed.ciphertext)
            .is_err());
        assert!(sealer.verify("secret-token", &sealed.hmac));
        assert!(!sealer.verify("secret-tokeN", &sealed.hmac));
        assert!(!sealer.verify("secret-token", &[]));
    }

    #[test]
    fn generated_ids_have_the_documented_shapes() {
        let main = account_auth_id(false);
        assert!(main.starts_with("MA_") && main.len() == 11);
        assert!(main[3..].bytes().all(|b| UPPER_ALNUM.contains(&b)));
        assert!(account_auth_id(true).starts_with("SA_"));
        let token = auth_token();
        assert!(token.len() == 40 && token.bytes().all(|b| b.is_ascii_alphanumeric()));
        for digits in [15, 17] {
            let id = numeric_id(digits);
            assert_eq!(id.len(), digits);
            assert!(id.bytes().all(|b| b.is_ascii_digit()) && !id.starts_with('0'));
        }
    }

    #[test]
    fn ha1_matches_rfc_2617_example() {
        // RFC 2617 §3.5: Mufasa / testrealm@host.com / Circle Of Life.
        let (md5, sha256) = ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
        assert_eq!(md5, "939e7578ed9e3c518a452acee763bce9");
        assert_eq!(sha256.len(), 64);
    }
}
