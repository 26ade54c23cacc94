//! Neural network building blocks.
