pub mod advice;
pub mod demo;
pub mod diff;
pub mod pull;
pub mod push;
pub mod rehearse;
pub mod rollback;
