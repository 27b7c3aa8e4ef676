//! Header parameters (`;name[=value]` after a Via, name-addr, media type...).

use std::borrow::Cow;

use crate::error::{ErrorKind, ParseError};
use crate::scan::{is_lws, unquote, Cursor};

/// One header parameter. Names are tokens; values are a token, a host
/// (IPv6 references included) or a quoted string (with its quotes; it may
/// hold any UTF-8 or even non-UTF-8 bytes, hence `&[u8]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// The parameter name as written.
    pub name: &'a str,
    /// The raw value (quotes kept), if there is a `=`.
    pub value: Option<&'a [u8]>,
}

impl<'a> Param<'a> {
    /// The raw value as `&str` if present and valid UTF-8.
    pub fn value_str(&self) -> Option<&'a str> {
        self.value.and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The value with surrounding quotes and quoted-pair escapes removed.
    pub fn value_unquoted(&self) -> Option<Cow<'a, [u8]>> {
        self.value.map(unquote)
    }
}

/// A parameter list as written (starting at its first `;`), validated when
/// the owning view was parsed. Folded line breaks and white space around `;`
/// and `=` are allowed and skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a> {
    raw: &'a [u8],
}

impl<'a> Params<'a> {
    /// The raw text, starting with `;` (empty if there are no parameters).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The parameters in order.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter {
            cursor: Cursor::new(self.raw, 0),
        }
    }

    /// The first parameter with this name (case-insensitive).
    pub fn get(&self, name: &str) -> Option<Param<'a>> {
        self.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The value of a parameter as `&str` (None if absent, valueless or not UTF-8).
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.get(name).and_then(|p| p.value_str())
    }

    /// Whether a parameter is present (with or without value).
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Iterator over [`Params`].
#[derive(Clone)]
pub struct ParamIter<'a> {
    cursor: Cursor<'a>,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = Param<'a>;

    fn next(&mut self) -> Option<Param<'a>> {
        // The list was validated by `parse_params`, so errors cannot happen
        // here; stopping at one is the safe fallback.
        next_param(&mut self.cursor).ok().flatten()
    }
}

fn is_param_value_char(b: u8) -> bool {
    !is_lws(b) && !matches!(b, b';' | b',' | b'"' | b'<' | b'>' | b'\\')
}

/// Reads `;name[=value]` at the cursor; `Ok(None)` at the end of input.
fn next_param<'a>(cursor: &mut Cursor<'a>) -> Result<Option<Param<'a>>, ParseError> {
    cursor.skip_lws();
    if cursor.at_end() {
        return Ok(None);
    }
    cursor.expect(b';', ErrorKind::UnexpectedChar)?;
    cursor.skip_lws();
    let name = cursor.token(ErrorKind::BadParam)?;
    let checkpoint = cursor.pos;
    cursor.skip_lws();
    let value = if cursor.eat(b'=') {
        cursor.skip_lws();
        let value = if cursor.peek() == Some(b'"') {
            cursor.quoted_string()?
        } else {
            cursor.take_while(is_param_value_char)
        };
        if value.is_empty() {
            return Err(cursor.err(ErrorKind::BadParam));
        }
        Some(value)
    } else {
        cursor.pos = checkpoint;
        None
    };
    Ok(Some(Param { name, value }))
}

/// Validates parameters from the cursor to the end of its buffer and returns
/// them as a [`Params`] view. `on_param` sees each parameter with its offset
/// once, so views can pick out their typed parameters in the same pass.
pub(crate) fn parse_params<'a>(
    cursor: &mut Cursor<'a>,
    mut on_param: impl FnMut(&Param<'a>, usize) -> Result<(), ParseError>,
) -> Result<Params<'a>, ParseError> {
    cursor.skip_lws();
    let start = cursor.pos;
    loop {
        let at = cursor.base + cursor.pos;
        match next_param(cursor)? {
            Some(param) => on_param(&param, at)?,
            None => break,
        }
    }
    Ok(Params {
        raw: cursor.slice(start, cursor.buf.len()),
    })
}
