//! The extension API of the registry.
//!
//! This crate will hold the `Signal` enum, its payloads and the registration
//! of receivers and guards. Extension crates depend on it and on
//! `registry-config`, never on the `registry` crate itself.
