//! The emoedge host: data loading, training, evaluation, quantization and export of the
//! facial-emotion models, as a library under the `emoedge` CLI.

pub mod atomic;
pub mod augment;
pub mod average;
pub mod backend;
pub mod cmd;
pub mod data;
pub mod export;
pub mod ferplus;
pub mod inference;
pub mod malloc;
pub mod metrics;
pub mod model;
pub mod plots;
pub mod quantize;
pub mod teacher;
pub mod training;
pub mod verify;
