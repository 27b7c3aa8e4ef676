//! Digest arithmetic (RFC 7616 §3.4.1, qop=auth): response = H(HA1:nonce:nc:cnonce:qop:HA2),
//! HA2 = H(method:digest-uri). Everything stays on the stack.

use md5::Md5;
use sha2::digest::Digest;
use sha2::Sha256;
use sipd_store::Credentials;
use subtle::ConstantTimeEq;

use crate::endpoint::EndpointInfo;

/// The Digest algorithms sipd can offer and accept (which ones, in which order:
/// [`RegistrarConfig::digest_algorithms`](crate::RegistrarConfig::digest_algorithms)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `MD5`
    Md5,
    /// `SHA-256`
    Sha256,
}

/// The client-chosen values that enter the response hash.
pub(crate) struct ResponseInputs<'a> {
    pub(crate) nonce: &'a str,
    pub(crate) nc: u32,
    pub(crate) cnonce: &'a str,
    pub(crate) method: &'a str,
    pub(crate) digest_uri: &'a str,
}

const MAX_DIGEST_LEN: usize = 32;

/// What the registrar keeps of an endpoint to check its Digest answers, with the endpoint's
/// facts ([`EndpointInfo`]). The HA1 values are held in binary, not as the store's hex strings:
/// one of these is cached per user seen, so its size counts.
#[derive(Clone)]
pub struct DigestCredentials {
    /// Who the endpoint is, whose it is and what it may do.
    pub endpoint: EndpointInfo,
    /// When the password last changed (Unix ms): nonces issued before are stale.
    pub changed_at_ms: i64,
    ha1_md5: [u8; 16],
    ha1_sha256: [u8; 32],
}

impl DigestCredentials {
    /// The registrar's view of a store row; `None` if its HA1 values are not hex digests of
    /// the right length (a damaged row authenticates nobody).
    pub fn from_store(credentials: &Credentials) -> Option<Self> {
        let mut ha1_md5 = [0u8; MAX_DIGEST_LEN];
        let mut ha1_sha256 = [0u8; MAX_DIGEST_LEN];
        Some(DigestCredentials {
            endpoint: EndpointInfo::from_store(credentials),
            changed_at_ms: credentials.credentials_changed_at.timestamp_millis(),
            ha1_md5: decode_hex(credentials.ha1_md5.as_bytes(), &mut ha1_md5)?
                .try_into()
                .ok()?,
            ha1_sha256: decode_hex(credentials.ha1_sha256.as_bytes(), &mut ha1_sha256)?
                .try_into()
                .ok()?,
        })
    }

    /// HA1 for `algorithm`, in binary.
    pub(crate) fn ha1(&self, algorithm: Algorithm) -> &[u8] {
        match algorithm {
            Algorithm::Md5 => &self.ha1_md5,
            Algorithm::Sha256 => &self.ha1_sha256,
        }
    }
}

impl std::fmt::Debug for DigestCredentials {
    // HA1 values are password equivalents: keep them out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestCredentials")
            .field("endpoint", &self.endpoint)
            .field("changed_at_ms", &self.changed_at_ms)
            .finish_non_exhaustive()
    }
}

/// Whether `response` (hex, either case) is the correct request digest for `ha1` (binary).
/// Runs in time independent of where the two differ.
pub(crate) fn response_matches(
    algorithm: Algorithm,
    ha1: &[u8],
    inputs: &ResponseInputs<'_>,
    response: &str,
) -> bool {
    let mut received = [0u8; MAX_DIGEST_LEN];
    let Some(received) = decode_hex(response.as_bytes(), &mut received) else {
        return false;
    };
    let mut ha1_hex = [0u8; 2 * MAX_DIGEST_LEN];
    let ha1_hex = encode_hex(ha1, &mut ha1_hex);
    let matches = |nc_case: NcCase| {
        let mut expected = [0u8; MAX_DIGEST_LEN];
        let expected = match algorithm {
            Algorithm::Md5 => request_digest::<Md5>(ha1_hex, inputs, nc_case, &mut expected),
            Algorithm::Sha256 => request_digest::<Sha256>(ha1_hex, inputs, nc_case, &mut expected),
        };
        received.len() == expected.len() && bool::from(received.ct_eq(expected))
    };
    // The client hashed the nc text it sent, which the parser kept only as a number:
    // RFC 7616 says lower-case hex, some clients send upper case. Only an nc with a hex
    // letter in it (10 and up) can differ, and that is no secret.
    matches(NcCase::Lower) || (has_hex_letter(inputs.nc) && matches(NcCase::Upper))
}

/// How the nc value is spelled in the hashed text.
#[derive(Clone, Copy)]
enum NcCase {
    Lower,
    Upper,
}

fn has_hex_letter(value: u32) -> bool {
    value
        .to_be_bytes()
        .iter()
        .any(|b| b >> 4 > 9 || b & 0x0f > 9)
}

/// The request digest as raw bytes, written into `out`.
fn request_digest<'o, D: Digest>(
    ha1_hex: &[u8],
    inputs: &ResponseInputs<'_>,
    nc_case: NcCase,
    out: &'o mut [u8; MAX_DIGEST_LEN],
) -> &'o [u8] {
    let ha2 = D::new()
        .chain_update(inputs.method)
        .chain_update(b":")
        .chain_update(inputs.digest_uri)
        .finalize();
    let mut ha2_hex = [0u8; 2 * MAX_DIGEST_LEN];
    let ha2_hex = encode_hex(&ha2, &mut ha2_hex);
    let mut nc_hex = [0u8; 8];
    encode_hex(&inputs.nc.to_be_bytes(), &mut nc_hex);
    if let NcCase::Upper = nc_case {
        nc_hex.make_ascii_uppercase();
    }
    let response = D::new()
        .chain_update(ha1_hex)
        .chain_update(b":")
        .chain_update(inputs.nonce)
        .chain_update(b":")
        .chain_update(nc_hex)
        .chain_update(b":")
        .chain_update(inputs.cnonce)
        .chain_update(b":auth:")
        .chain_update(ha2_hex)
        .finalize();
    let len = response.len().min(MAX_DIGEST_LEN);
    out[..len].copy_from_slice(&response[..len]);
    &out[..len]
}

/// Lowercase hex of `bytes` into the front of `out` (which must be twice as long or longer).
fn encode_hex<'o>(bytes: &[u8], out: &'o mut [u8]) -> &'o [u8] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let len = (bytes.len() * 2).min(out.len());
    for (pair, byte) in out[..len].chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
    &out[..len]
}

/// Bytes of an even-length hex string into the front of `out`; `None` if it is not hex or
/// too long.
fn decode_hex<'o>(hex: &[u8], out: &'o mut [u8; MAX_DIGEST_LEN]) -> Option<&'o [u8]> {
    let pairs = hex.chunks_exact(2);
    if !pairs.remainder().is_empty() || pairs.len() > out.len() {
        return None;
    }
    let len = pairs.len();
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    for (byte, pair) in out.iter_mut().zip(pairs) {
        *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(&out[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_of(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 7616 §3.9.1: the same request answered with MD5 and with SHA-256.
    #[test]
    fn rfc7616_example() {
        let inputs = ResponseInputs {
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            nc: 1,
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            method: "GET",
            digest_uri: "/dir/index.html",
        };
        let secret = b"Mufasa:http-auth@example.org:Circle of Life";
        let md5_ha1 = Md5::digest(secret);
        let sha_ha1 = Sha256::digest(secret);
        assert!(response_matches(
            Algorithm::Md5,
            &md5_ha1,
            &inputs,
            "8ca523f5e9506fed4657c9700eebdbec"
        ));
        assert!(response_matches(
            Algorithm::Sha256,
            &sha_ha1,
            &inputs,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        ));
        // Upper case hex is the same number.
        assert!(response_matches(
            Algorithm::Md5,
            &md5_ha1,
            &inputs,
            "8CA523F5E9506FED4657C9700EEBDBEC"
        ));
        // The MD5 answer is not a SHA-256 answer, a one-digit change fails, junk fails.
        assert!(!response_matches(
            Algorithm::Sha256,
            &sha_ha1,
            &inputs,
            "8ca523f5e9506fed4657c9700eebdbec"
        ));
        // nc=0000000a hashed as "0000000A" (a client sending upper-case hex) is accepted,
        // and so is the RFC's lower case; a wrong count is not.
        let tenth = |nc_text: &str, nc: u32| {
            let ha2 = hex_of(&Md5::digest("GET:/dir/index.html"));
            let text = format!(
                "{}:{}:{nc_text}:{}:auth:{ha2}",
                hex_of(&md5_ha1),
                inputs.nonce,
                inputs.cnonce
            );
            let answer = hex_of(&Md5::digest(text));
            response_matches(
                Algorithm::Md5,
                &md5_ha1,
                &ResponseInputs { nc, ..inputs },
                &answer,
            )
        };
        assert!(tenth("0000000a", 10));
        assert!(tenth("0000000A", 10));
        assert!(!tenth("0000000A", 11));
        for wrong in ["8ca523f5e9506fed4657c9700eebdbed", "", "8ca", "zz", "é"] {
            assert!(!response_matches(Algorithm::Md5, &md5_ha1, &inputs, wrong));
        }
    }
}
