//! Timestamp renderings used on the wire (all UTC).

use chrono::{DateTime, SecondsFormat, Utc};

/// `2026-01-05T09:00:00Z` (endpoints, sub-accounts).
pub fn iso_z(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `2026-04-02 12:11:19.740666+00:00`: the Python-style form Vobiz documents for applications.
pub fn python_style(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string()
}

/// `2026-01-05` (sub-account `created` / `modified`).
pub fn date(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d").to_string()
}
