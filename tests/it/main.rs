//! Integration tests against real services. One binary (each file under
//! tests/ would link everything again), one module per area.

mod adapters;
mod adapters_edfi_api;
mod adapters_fint;
mod cli;
mod fake;
mod store;
mod support;
