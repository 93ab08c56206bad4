pub mod diff;
pub mod pull;
pub mod rehearse;
pub mod push;
pub mod rollback;
pub mod demo;
