//! Integration tests against real services. One binary (each file under
//! tests/ would link everything again), one module per area.

// matrix-sdk's sync futures nest deeply.
#![recursion_limit = "256"]

mod cli;
mod matrix;
mod store;
mod support;
mod synapse;
