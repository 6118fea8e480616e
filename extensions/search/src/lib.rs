//! The search extension, not built yet: it links nothing.
