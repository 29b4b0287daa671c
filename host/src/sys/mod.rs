//! Plumbing under every stage, apart from the domain modules so that those read as the
//! pipeline (data, train, quantize, export, eval, verify):
//!
//! - [`atomic`]: file writes that readers see whole or not at all;
//! - [`backend`]: the one place the compute device is chosen;
//! - [`hash`]: hex digests that name weights;
//! - [`json`]: JSON files with errors naming the file;
//! - [`malloc`]: glibc allocator settings for training.

pub mod atomic;
pub mod backend;
pub mod hash;
pub mod json;
pub mod malloc;
