//! The three input formats (fleet, playbook, calendar) and their validation.

pub mod error;
pub mod units;
