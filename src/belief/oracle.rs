//! Exact beliefs (placeholder until implemented).
