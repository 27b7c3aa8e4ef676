//! Plivo-style pagination (`limit`/`offset`, with `page`/`size` accepted as aliases) and the
//! `meta` block of list replies.

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, FieldErrors};

pub const DEFAULT_LIMIT: i64 = 20;
/// Larger limits are clamped to this (not refused): `meta.limit` tells the client what it got.
pub const MAX_LIMIT: i64 = 100;

#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub limit: i64,
    pub offset: i64,
}

impl PageRequest {
    /// `limit` wins over `size`, `offset` over `page`; `page` is 1-based, so page `p` of size
    /// `s` starts at offset `(p - 1) * s`.
    pub fn resolve(
        limit: Option<i64>,
        offset: Option<i64>,
        page: Option<i64>,
        size: Option<i64>,
    ) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let (limit_field, limit) = match (limit, size) {
            (Some(limit), _) => ("limit", limit),
            (None, Some(size)) => ("size", size),
            (None, None) => ("limit", DEFAULT_LIMIT),
        };
        if limit < 1 {
            errors.add(limit_field, "must be at least 1");
        }
        let limit = limit.clamp(1, MAX_LIMIT);
        let offset = match (offset, page) {
            (Some(offset), _) => {
                if offset < 0 {
                    errors.add("offset", "must not be negative");
                }
                offset
            }
            (None, Some(page)) => {
                if page < 1 {
                    errors.add("page", "must be at least 1");
                }
                page.saturating_sub(1).saturating_mul(limit)
            }
            (None, None) => 0,
        };
        errors.finish()?;
        Ok(PageRequest { limit, offset })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Meta {
    pub limit: i64,
    pub offset: i64,
    pub total_count: i64,
    /// Relative URL of the next page (same filters), or null on the last page.
    #[schema(example = "/v1/Account/MA_AB12CD34/Endpoint/?limit=20&offset=20")]
    pub next: Option<String>,
    /// Relative URL of the previous page, or null on the first.
    pub previous: Option<String>,
}

impl Meta {
    /// `base` is the list's relative URL (`/v1/Account/{auth_id}/Endpoint/`); `filters` are
    /// repeated in the `next`/`previous` links.
    pub fn new(
        base: &str,
        page: PageRequest,
        total_count: i64,
        filters: &[(&str, String)],
    ) -> Self {
        let link = |offset: i64| {
            let mut pairs = vec![
                ("limit", page.limit.to_string()),
                ("offset", offset.to_string()),
            ];
            pairs.extend(filters.iter().cloned());
            let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
            format!("{base}?{query}")
        };
        let next_offset = page.offset.saturating_add(page.limit);
        Meta {
            limit: page.limit,
            offset: page.offset,
            total_count,
            next: (next_offset < total_count).then(|| link(next_offset)),
            previous: (page.offset > 0).then(|| link((page.offset - page.limit).max(0))),
        }
    }
}
