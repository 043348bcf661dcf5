//! Leaf module: plain value types (field paths, durations, percentages) that imports nothing
//! from the rest of the crate, so config, watch, calendar, edit and cmd can all share them
//! without depending on each other.

mod field_path;
mod units;

pub use field_path::{FieldPath, Seg};
pub use units::{Dur, Percent};
