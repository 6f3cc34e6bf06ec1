//! The Magic Hour API: the tool catalogue, serde models, the HTTP client and its retry helper.

pub mod catalog;
pub(crate) mod client;
pub(crate) mod error;
pub mod retry;
pub mod schema;
pub mod types;
pub mod webhook;

pub use client::{ApiKey, Client};
pub use error::ApiError;
