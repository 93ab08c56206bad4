pub mod adopt;
pub mod demo;
pub mod pull;
pub mod push;
pub mod receipts;
pub mod rehearse;
pub mod report;
pub mod rollback;
