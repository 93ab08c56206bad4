pub mod dependents;
pub mod pg_error;
pub mod postgres;
pub mod privileges;
pub mod sqlite;
pub mod staging;
pub mod triggers;
pub mod writes;
