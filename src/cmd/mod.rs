pub mod plan;
pub mod pull;
pub mod rehearse;
pub mod status;
