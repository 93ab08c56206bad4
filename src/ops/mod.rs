pub mod diff;
pub mod pull;
pub mod rehearse;
