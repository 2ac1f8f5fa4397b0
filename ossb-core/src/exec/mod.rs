//! The executor: stage scheduling, filesystem operations and layer creation (to be filled in).

pub mod fsindex;
pub mod transfer;
pub mod doctor;
pub mod sandbox;
pub mod snapshot;
