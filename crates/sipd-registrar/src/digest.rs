//! Digest arithmetic (RFC 7616 §3.4.1, qop=auth): response = H(HA1:nonce:nc:cnonce:qop:HA2),
//! HA2 = H(method:digest-uri). Everything stays on the stack.

use md5::Md5;
use sha2::digest::Digest;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The Digest algorithms the registrar can offer and accept (which ones, in which order:
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

/// Whether `response` (hex, either case) is the correct request digest for `ha1_hex`.
/// Runs in time independent of where the two differ.
pub(crate) fn response_matches(
    algorithm: Algorithm,
    ha1_hex: &[u8],
    inputs: &ResponseInputs<'_>,
    response: &str,
) -> bool {
    let mut expected = [0u8; MAX_DIGEST_LEN];
    let expected = match algorithm {
        Algorithm::Md5 => request_digest::<Md5>(ha1_hex, inputs, &mut expected),
        Algorithm::Sha256 => request_digest::<Sha256>(ha1_hex, inputs, &mut expected),
    };
    let mut received = [0u8; MAX_DIGEST_LEN];
    let Some(received) = decode_hex(response.as_bytes(), &mut received) else {
        return false;
    };
    received.len() == expected.len() && bool::from(received.ct_eq(expected))
}

/// The request digest as raw bytes, written into `out`.
fn request_digest<'o, D: Digest>(
    ha1_hex: &[u8],
    inputs: &ResponseInputs<'_>,
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

/// Lowercase hex of H(data), for the dummy HA1 and tests.
pub(crate) fn hex_hash<D: Digest>(data: &[u8]) -> String {
    let hash = D::digest(data);
    let mut out = [0u8; 2 * MAX_DIGEST_LEN];
    let hex = encode_hex(&hash, &mut out);
    String::from_utf8_lossy(hex).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let md5_ha1 = hex_hash::<Md5>(secret);
        let sha_ha1 = hex_hash::<Sha256>(secret);
        assert!(response_matches(
            Algorithm::Md5,
            md5_ha1.as_bytes(),
            &inputs,
            "8ca523f5e9506fed4657c9700eebdbec"
        ));
        assert!(response_matches(
            Algorithm::Sha256,
            sha_ha1.as_bytes(),
            &inputs,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        ));
        // Upper case hex is the same number.
        assert!(response_matches(
            Algorithm::Md5,
            md5_ha1.as_bytes(),
            &inputs,
            "8CA523F5E9506FED4657C9700EEBDBEC"
        ));
        // The MD5 answer is not a SHA-256 answer, a one-digit change fails, junk fails.
        assert!(!response_matches(
            Algorithm::Sha256,
            sha_ha1.as_bytes(),
            &inputs,
            "8ca523f5e9506fed4657c9700eebdbec"
        ));
        for wrong in ["8ca523f5e9506fed4657c9700eebdbed", "", "8ca", "zz", "é"] {
            assert!(!response_matches(
                Algorithm::Md5,
                md5_ha1.as_bytes(),
                &inputs,
                wrong
            ));
        }
    }
}
