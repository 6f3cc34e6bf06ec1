//! mhfs: Magic Hour as a drive. See README.md for the map of the code.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod api;
pub mod cli;
pub mod engine;
pub mod fs;
pub mod media;
pub mod mock;
