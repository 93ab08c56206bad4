pub mod advice;
pub mod demo;
pub mod diff;
pub mod pull;
pub mod push;
pub mod receipts;
pub mod rehearse;
pub mod rollback;
