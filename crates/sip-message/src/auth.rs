//! Digest (RFC 7616) and Bearer (RFC 8898) credentials and challenges.
