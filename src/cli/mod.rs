//! The commands of the `vista` binary, one file each, over what they share (`engine`).

pub mod analyze;
pub mod bundle;
pub mod container;
pub mod engine;
pub mod models;
pub mod search;
pub mod serve;
pub mod train;
