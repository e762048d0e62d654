//! Fake source servers speaking the real protocols over loopback.

pub mod edfi;

pub mod fint;

pub mod vendor;
