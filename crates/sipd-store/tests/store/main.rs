//! Store behaviour, run against SQLite by default and against PostgreSQL when
//! `SIPD_TEST_DATABASE_URL` is set (same tests, via `sipd_store::testing::fresh_store`).

mod accounts;
mod applications;
mod availability;
mod bindings;
mod common;
mod endpoints;
mod migrations;
mod notifications;
mod robustness;
