//! The release calendar: freeze windows, change tiers, and the gate that decides whether a
//! change may ship now (see `docs/calendar.md`).
//!
//! `spec` is what the TOML says, `window` turns windows into UTC intervals, `decide` is the
//! gate used by `gate`, `rollout` and `plan`, `listing` renders `bellwether calendar`, and
//! `offpeak` is the `--within` window for scheduled runs.

pub mod decide;
pub mod listing;
pub mod offpeak;
pub mod recur;
pub mod spec;
pub mod tiers;
pub mod time;
pub mod window;

#[cfg(test)]
mod decide_tests;
#[cfg(test)]
mod window_tests;

pub use decide::{decide, Decision, Effect, Exception, GateRequest, Readiness, WindowHit, MIN_BATCH_STEPS};
pub use listing::{render_text, upcoming, ListError, Occurrence};
pub use offpeak::{OffPeak, OffPeakError};
pub use spec::{CalendarSpec, EmergencyProfile, FreezeKind, FreezeWindow};
pub use tiers::{Permit, Tier, TierOverride, TierOverrides, TierRule};
pub use time::{operator_zone, parse_at, TimeError};
pub use window::{ResolvedWindow, Span, WindowError};
