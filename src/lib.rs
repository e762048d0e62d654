//! tilstede: an interoperability gateway and Matrix bot for following up
//! serious school absence (alvorlig skolefravær) in Norwegian municipalities.
//!
//! Pure logic ([`domain`], [`rules`]) is kept apart from IO ([`adapters`],
//! [`store`], [`ingest`]). See DESIGN.md for the map.

pub mod adapters;
pub mod archive;
pub mod cases;
pub mod chat;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod ingest;
pub mod insight;
pub mod matrix;
pub mod render;
pub mod rules;
pub mod service;
pub mod store;
pub mod synthetic;
pub mod workflow;

/// The version string, with the git commit the binary was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("TILSTEDE_COMMIT"), ")");
