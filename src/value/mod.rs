//! Leaf module: plain value types (durations, percentages) that imports nothing from the rest
//! of the crate, so config, watch, calendar and cmd can all share them without depending on
//! each other.

mod units;

pub use units::{Dur, Percent};
