//! sipd-api against a real store over a loopback socket. SQLite by default; set
//! `SIPD_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test` to run on PostgreSQL.

mod applications;
mod common;
mod endpoints;
mod protocol;
mod sub_accounts;
mod unavailable;
