//! The executor: stage scheduling, filesystem operations and layer creation (to be filled in).

pub mod doctor;
pub mod fsindex;
pub mod sandbox;
pub mod snapshot;
pub mod transfer;
