//! No code: see `Cargo.toml`. xdrctl depends on this crate only for the features it unifies.
