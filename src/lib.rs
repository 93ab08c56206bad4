//! `sandbox`: pull a Postgres snapshot into SQLite, rehearse a migration
//! plan on it, and push the validated diff back in one checked transaction.

pub mod advice;
pub mod catalog;
pub mod db;
pub mod diff;
pub mod error;
pub mod fixtures;
pub mod interrupt;
pub mod latency;
pub mod ops;
pub mod outfile;
pub mod pgjson;
pub mod plan;
pub mod receipt;
pub mod redact;
pub mod types;
pub mod words;
pub mod write_order;
