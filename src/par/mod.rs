//! Parallel work that never changes a result: the thread count decides only the wall time.
//!
//! Work is cut into items whose number and bounds never depend on the thread count
//! ([`map::ranges`]), each item is computed alone, and results are combined in item order
//! ([`map::map`], [`map::map_with`]); a job of exactly two parts runs them side by side
//! ([`join::join`]). Where the same job runs again and again at every
//! environment step, [`pool::Pool`] keeps its threads parked between runs instead of
//! spawning them each time.
//!
//! ```
//! use bamdp::par;
//! let sums = par::map(2, 3, |i| (0..=i).sum::<usize>());
//! assert_eq!(sums, vec![0, 1, 3]);
//! assert_eq!(par::ranges(5, 2), vec![0..3, 3..5]);
//! ```

pub mod join;
pub mod map;
pub mod pool;

pub use join::join;
pub use map::{map, map_with, ranges};
pub use pool::Pool;
