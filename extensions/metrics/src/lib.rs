//! The metrics extension, not built yet: it links nothing.
