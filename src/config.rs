//! TOML configuration (placeholder until implemented).
