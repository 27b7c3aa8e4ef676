//! Responses the registrar answers with, and the small text helpers they need.

use std::borrow::Cow;
use std::fmt::Write as _;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sip_message::Message;

/// A response to send for the REGISTER, through its server transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, for logs and metrics.
    pub status: u16,
    /// The complete response message.
    pub bytes: Bytes,
}

/// Builds responses with a To tag that is stable for one request (retransmissions of a
/// REGISTER get the same tag) and unpredictable to others (RFC 3261 §19.3).
pub(crate) struct Responder {
    tag_mac: Hmac<Sha256>,
}

impl Responder {
    pub(crate) fn new(tag_mac: Hmac<Sha256>) -> Self {
        Responder { tag_mac }
    }

    /// `status` with the default reason phrase, or `reason`, and `headers` after the copied ones.
    pub(crate) fn respond(
        &self,
        request: &Message,
        status: u16,
        reason: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Response {
        let tag = self.to_tag(request);
        let tag = std::str::from_utf8(&tag).unwrap_or_default();
        let mut builder = request.response(status).to_tag(tag);
        if let Some(reason) = reason {
            builder = builder.reason(reason);
        }
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        Response {
            status,
            bytes: builder.build_bytes(),
        }
    }

    fn to_tag(&self, request: &Message) -> [u8; 16] {
        let mut mac = self.tag_mac.clone();
        mac.update(b"to-tag\0");
        mac.update(request.call_id().unwrap_or_default().as_bytes());
        mac.update(b"\0");
        mac.update(request.from_tag().unwrap_or_default().as_bytes());
        mac.update(b"\0");
        let seq = request.cseq().map_or(0, |cseq| cseq.seq);
        mac.update(&seq.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let mut tag = [0u8; 16];
        for (pair, byte) in tag.chunks_exact_mut(2).zip(digest.iter()) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0x0f)];
        }
        tag
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Text from a request or the store made safe for a header value: control characters (folded
/// line breaks included) become spaces.
pub(crate) fn header_safe(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\t';
    if text.contains(unsafe_char) {
        Cow::Owned(text.replace(unsafe_char, " "))
    } else {
        Cow::Borrowed(text)
    }
}

/// `now_ms` as an RFC 1123 date (`Date` header, RFC 3261 §20.17), e.g. `Sat, 13 Nov 2010 23:29:00 GMT`.
pub(crate) fn http_date(now_ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = now_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = DAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    let month_name = MONTHS[usize::try_from(month - 1).unwrap_or(0).min(11)];
    let mut out = String::with_capacity(29);
    let _ = write!(
        out,
        "{weekday}, {day:02} {month_name} {year:04} {:02}:{:02}:{:02} GMT",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
    out
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(1_289_690_940_999),
            "Sat, 13 Nov 2010 23:29:00 GMT"
        );
        assert_eq!(http_date(951_782_400_000), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(-1000), "Wed, 31 Dec 1969 23:59:59 GMT");
    }

    #[test]
    fn control_characters_become_spaces() {
        assert_eq!(header_safe("a\r\n b\tc"), "a   b\tc");
        assert!(matches!(header_safe("plain"), Cow::Borrowed("plain")));
    }
}
