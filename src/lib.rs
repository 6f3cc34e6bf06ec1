//! mhfs: Magic Hour as a drive. See README.md for the map of the code.

pub mod api;
pub mod cli;
pub mod engine;
pub mod fs;
pub mod media;
pub mod mock;
