//! Byte-level scanning helpers shared by the typed views.

use std::borrow::Cow;

use crate::error::{ErrorKind, ParseError};

/// RFC 3261 `token` characters.
const TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    table
};

#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    TOKEN[b as usize]
}

/// Linear white space, including the CR/LF of folded lines (header values
/// keep their folds; the views treat them as white space).
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Converts bytes already checked to be ASCII into `&str`.
#[inline]
pub(crate) fn ascii_str(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

pub(crate) fn trim_lws(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes {
        if is_lws(*first) {
            bytes = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = bytes {
        if is_lws(*last) {
            bytes = rest;
        } else {
            break;
        }
    }
    bytes
}

/// Parses ASCII decimal digits into a u64, rejecting overflow and non-digits.
pub(crate) fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

/// Parses a decimal number into a u32, distinguishing bad syntax from overflow.
pub(crate) fn parse_u32(digits: &[u8]) -> Result<u32, ErrorKind> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ErrorKind::BadNumber);
    }
    parse_u64(digits)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or(ErrorKind::NumberOutOfRange)
}

/// Removes `%HH` escapes. Invalid escapes are kept literally. Never recursive:
/// the output of one escape is not looked at again.
pub fn unescape(text: &[u8]) -> Cow<'_, [u8]> {
    if !text.contains(&b'%') {
        return Cow::Borrowed(text);
    }
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if b == b'%' {
            if let (Some(hi), Some(lo)) = (
                text.get(i + 1).and_then(|&h| hex_value(h)),
                text.get(i + 2).and_then(|&l| hex_value(l)),
            ) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    Cow::Owned(out)
}

pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Removes the quotes and quoted-pair backslashes of a quoted string (given
/// with its quotes); anything else is returned as is.
pub(crate) fn unquote(raw: &[u8]) -> Cow<'_, [u8]> {
    let inner = match raw {
        [b'"', inner @ .., b'"'] => inner,
        _ => return Cow::Borrowed(raw),
    };
    if !inner.contains(&b'\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut escaped = false;
    for &b in inner {
        if escaped || b != b'\\' {
            out.push(b);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    Cow::Owned(out)
}

/// A cursor over a header value (or part of one). `base` is the offset of
/// `buf[0]` in the message so errors point into the message.
#[derive(Clone, Copy)]
pub(crate) struct Cursor<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
    pub base: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8], base: usize) -> Self {
        Cursor { buf, pos: 0, base }
    }

    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    #[inline]
    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline]
    pub fn err(&self, kind: ErrorKind) -> ParseError {
        ParseError::new(kind, self.base + self.pos)
    }

    #[inline]
    pub fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub fn expect(&mut self, b: u8, kind: ErrorKind) -> Result<(), ParseError> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.err(kind))
        }
    }

    /// Skips white space; returns whether any was skipped.
    #[inline]
    pub fn skip_lws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_lws) {
            self.pos += 1;
        }
        self.pos > start
    }

    #[inline]
    pub fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.pos += 1;
        }
        self.buf.get(start..self.pos).unwrap_or_default()
    }

    pub fn slice(&self, start: usize, end: usize) -> &'a [u8] {
        self.buf.get(start..end).unwrap_or_default()
    }

    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// A non-empty token.
    pub fn token(&mut self, kind: ErrorKind) -> Result<&'a str, ParseError> {
        let token = self.take_while(is_token);
        if token.is_empty() {
            Err(self.err(kind))
        } else {
            Ok(ascii_str(token))
        }
    }

    /// A quoted string starting at the cursor; returns it with its quotes.
    pub fn quoted_string(&mut self) -> Result<&'a [u8], ParseError> {
        let start = self.pos;
        self.expect(b'"', ErrorKind::UnexpectedChar)?;
        loop {
            match self.peek() {
                None => {
                    self.pos = start;
                    return Err(self.err(ErrorKind::UnterminatedQuote));
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(self.slice(start, self.pos));
                }
                Some(b'\\') => {
                    // quoted-pair: any octet except CR and LF may follow.
                    match self.buf.get(self.pos + 1) {
                        Some(b'\r' | b'\n') | None => {
                            self.pos = start;
                            return Err(self.err(ErrorKind::UnterminatedQuote));
                        }
                        Some(_) => self.pos += 2,
                    }
                }
                Some(_) => self.pos += 1,
            }
        }
    }
}

/// Returns the index just after the closing quote of a quoted string whose
/// content starts at `from` (or the end of `buf` if it is unterminated).
fn skip_quoted(buf: &[u8], mut from: usize) -> usize {
    loop {
        let rest = buf.get(from..).unwrap_or_default();
        match memchr::memchr2(b'"', b'\\', rest) {
            None => return buf.len(),
            Some(found) if rest.get(found) == Some(&b'"') => return from + found + 1,
            Some(found) => from += found + 2,
        }
    }
}

/// Splits a header value into list elements at commas that are outside
/// quoted strings and angle brackets. Each element is trimmed of white space
/// and comes with its offset in the message. Empty elements are yielded (the
/// element parsers reject them); an entirely empty value yields nothing.
#[derive(Clone)]
pub(crate) struct CommaSplit<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    done: bool,
}

impl<'a> CommaSplit<'a> {
    pub fn new(buf: &'a [u8], base: usize) -> Self {
        let done = trim_lws(buf).is_empty();
        CommaSplit {
            buf,
            pos: 0,
            base,
            done,
        }
    }
}

impl<'a> Iterator for CommaSplit<'a> {
    type Item = (&'a [u8], usize);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let start = self.pos;
        // Jump between the bytes that matter with memchr instead of walking
        // every byte: most values have no quotes and no commas.
        let mut i = start;
        let end = loop {
            let rest = self.buf.get(i..).unwrap_or_default();
            let Some(found) = memchr::memchr3(b',', b'"', b'<', rest) else {
                self.done = true;
                break self.buf.len();
            };
            let at = i + found;
            match self.buf.get(at) {
                Some(b',') => break at,
                Some(b'"') => i = skip_quoted(self.buf, at + 1),
                _ => {
                    let after = self.buf.get(at + 1..).unwrap_or_default();
                    i = memchr::memchr(b'>', after).map_or(self.buf.len(), |close| at + 2 + close);
                }
            }
        };
        self.pos = end.saturating_add(1);
        let element = self.buf.get(start..end).unwrap_or_default();
        let leading = element.iter().take_while(|&&b| is_lws(b)).count();
        Some((trim_lws(element), self.base + start + leading))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(value: &[u8]) -> Vec<(&[u8], usize)> {
        CommaSplit::new(value, 100).collect()
    }

    #[test]
    fn comma_split_respects_quotes_and_angles() {
        assert_eq!(
            split(b"\"a, \\\"b\" <sip:x,y@h>;p=1 , <sip:z@h>"),
            [
                (&b"\"a, \\\"b\" <sip:x,y@h>;p=1"[..], 100),
                (&b"<sip:z@h>"[..], 127)
            ]
        );
        assert_eq!(
            split(b"a,,b"),
            [(&b"a"[..], 100), (&b""[..], 102), (&b"b"[..], 103)]
        );
        assert_eq!(split(b"  "), []);
        assert_eq!(split(b"a,"), [(&b"a"[..], 100), (&b""[..], 102)]);
        assert_eq!(split(b"\"open, <x"), [(&b"\"open, <x"[..], 100)]);
        assert_eq!(split(b"<open, \"x"), [(&b"<open, \"x"[..], 100)]);
        assert_eq!(split(b"\"trailing\\"), [(&b"\"trailing\\"[..], 100)]);
    }

    #[test]
    fn unescape_and_unquote() {
        assert_eq!(unescape(b"a%41%4").as_ref(), b"aA%4");
        assert_eq!(unescape(b"%zz%2541").as_ref(), b"%zz%41");
        assert_eq!(unquote(b"\"a\\\"b\\\\\"").as_ref(), b"a\"b\\");
        assert_eq!(unquote(b"token").as_ref(), b"token");
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32(b"0009"), Ok(9));
        assert_eq!(parse_u32(b"4294967295"), Ok(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), Err(ErrorKind::NumberOutOfRange));
        assert_eq!(parse_u32(b"-1"), Err(ErrorKind::BadNumber));
        assert_eq!(parse_u32(b""), Err(ErrorKind::BadNumber));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
    }
}
