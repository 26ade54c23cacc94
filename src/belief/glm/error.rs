//! The typed errors of the GLM belief: what a caller can get wrong (prior values,
//! shapes, prefix lengths) and the numerical failure that a valid prior rules out.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum GlmError {
    /// A prior field holds a value that is not allowed.
    #[error("invalid MNIW prior: `{field}` = {value}; allowed: {allowed}")]
    InvalidPrior {
        field: &'static str,
        value: String,
        allowed: String,
    },
    /// An input slice or dimension does not match the declared shape.
    #[error("shape mismatch: `{what}` has {got} entries, expected {expected}")]
    Shape {
        what: &'static str,
        got: usize,
        expected: usize,
    },
    /// Statistics that no data set can produce (a negative or non-finite count).
    #[error("invalid statistics: `{field}` = {value}; allowed: a finite value >= 0")]
    InvalidStats { field: &'static str, value: f64 },
    /// A prefix length outside `1..=steps` in the batched trial loss.
    #[error("invalid prefix length {n} for trial {trial}: allowed 1..={steps}")]
    InvalidPrefix {
        trial: usize,
        n: usize,
        steps: usize,
    },
    /// A matrix that must be positive definite (Λ_N or Ψ_N) is not numerically so.
    /// With a valid prior this needs statistics so extreme that rounding cancels Ψ0.
    #[error("`{what}` is not positive definite (pivot {pivot} = {value})")]
    NotPositiveDefinite {
        what: &'static str,
        pivot: usize,
        value: f64,
    },
}

pub(crate) fn check_len(what: &'static str, got: usize, expected: usize) -> Result<(), GlmError> {
    if got == expected {
        Ok(())
    } else {
        Err(GlmError::Shape {
            what,
            got,
            expected,
        })
    }
}
