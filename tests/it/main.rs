//! Integration tests against real services. One binary (each file under
//! tests/ would link everything again), one module per area.

// matrix-sdk's sync futures nest deeply.
#![recursion_limit = "256"]

mod adapters;
mod adapters_edfi_api;
mod adapters_fint;
mod adapters_oneroster;
mod adapters_vendor_rest;
mod archive;
mod cases;
mod chat;
mod cli;
mod fake;
mod http;
mod identity;
mod import_versions;
mod insight;
mod matrix;
mod media;
mod quarantine;
mod retention;
mod serve;
mod store;
mod support;
mod synapse;
mod trust;
