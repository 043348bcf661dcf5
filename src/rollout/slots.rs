//! One host's blue/green slots as preflight found them: plain data, kept apart from the
//! staging code (blue_green.rs) so a prepared host (host.rs) can hold it without the two
//! files importing each other.

use crate::config::playbook::BlueGreenSpec;
use serde::{Deserialize, Serialize};

/// One host's slots as preflight found them (also kept in `plan.json` for `resume`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlueGreenHost {
    /// The symlink, as configured (rendered for the host).
    pub link: String,
    /// The slot the link points at now.
    pub live: String,
    /// The other slot: staged, then flipped to.
    pub idle: String,
    /// The link's raw target now (what `readlink` prints; a revert puts exactly this back).
    pub from: String,
    /// The raw target the flip writes: relative if `from` is, else absolute.
    pub to: String,
}

impl BlueGreenHost {
    /// Where a path named through the link lives in `slot`.
    pub fn in_slot(&self, path: &str, slot: &str) -> Option<String> {
        BlueGreenSpec::below_link(&self.link, path).map(|rest| format!("{slot}/{rest}"))
    }

    /// A path named through the link, in the idle slot (where it is staged).
    pub fn idle_path(&self, path: &str) -> String {
        self.in_slot(path, &self.idle).unwrap_or_else(|| path.to_string())
    }

    /// A path named through the link, in the live slot (what the agent reads now).
    pub fn live_path(&self, path: &str) -> String {
        self.in_slot(path, &self.live).unwrap_or_else(|| path.to_string())
    }

    /// One line for plans and logs.
    pub fn describe(&self) -> String {
        format!(
            "live slot {}, stage into idle slot {}, then flip {}: {} -> {}",
            self.live, self.idle, self.link, self.from, self.to
        )
    }
}
