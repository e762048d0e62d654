//! Integration tests against real services. One binary (each file under
//! tests/ would link everything again), one module per area.

mod cases;
mod cli;
mod store;
mod support;
