//! Integration tests against real services. One binary (each file under
//! tests/ would link everything again), one module per area.

mod adapters;
mod adapters_edfi_api;
mod cases;
mod cli;
mod fake;
mod http;
mod serve;
mod store;
mod support;
