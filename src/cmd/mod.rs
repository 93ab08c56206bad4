pub mod pull;
pub mod status;
