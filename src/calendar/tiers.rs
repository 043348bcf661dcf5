//! Change tiers and what each may do inside a freeze.
//!
//! The defaults are the seed's table (hard freeze: T0 only, by exception; soft freeze: T0, and
//! T1 by exception; T2 needs a canary; T3 needs the readiness checks). A calendar overrides
//! them per tier and per field, so a team can, say, let T1 through soft freezes unasked
//! without restating the rest.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How strict a freeze is: `hard` lets only emergencies through, `soft` also low-risk hotfixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FreezeKind {
    Hard,
    Soft,
}

impl fmt::Display for FreezeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FreezeKind::Hard => "hard",
            FreezeKind::Soft => "soft",
        })
    }
}

/// Change risk tier, from T0 (emergency fix) to T3 (risky: model swap, index rebuild).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Tier {
    T0,
    T1,
    T2,
    T3,
}

impl Tier {
    /// All tiers, lowest risk first.
    pub const ALL: [Tier; 4] = [Tier::T0, Tier::T1, Tier::T2, Tier::T3];
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tier::T0 => "T0",
            Tier::T1 => "T1",
            Tier::T2 => "T2",
            Tier::T3 => "T3",
        })
    }
}

impl FromStr for Tier {
    type Err = String;
    /// Accepts `T0`..`T3` in either case, as PR labels and `--tier` are typed by hand.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "T0" => Ok(Tier::T0),
            "T1" => Ok(Tier::T1),
            "T2" => Ok(Tier::T2),
            "T3" => Ok(Tier::T3),
            _ => Err(format!("unknown tier {s:?}; expected T0, T1, T2 or T3")),
        }
    }
}

/// What a tier may do inside a freeze of some kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permit {
    /// Proceeds without further ado.
    Allow,
    /// Proceeds only with an exception carrying a reason and an approver.
    Exception,
    /// Never proceeds; an exception does not help.
    Block,
}

/// The effective rules for one tier, after the file's overrides are applied to the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TierRule {
    /// Inside a hard freeze.
    pub hard: Permit,
    /// Inside a soft freeze.
    pub soft: Permit,
    /// The change must go through a canary step.
    pub canary: bool,
    /// The playbook must pass the readiness checks (health, log watch, batch plan).
    pub readiness: bool,
}

impl TierRule {
    /// The seed's defaults: hard admits T0 by exception; soft admits T0, and T1 by exception;
    /// T2 needs a canary; T3 needs the readiness checks.
    pub fn default_for(tier: Tier) -> TierRule {
        use Permit::*;
        let (hard, soft, canary, readiness) = match tier {
            Tier::T0 => (Exception, Allow, false, false),
            Tier::T1 => (Block, Exception, false, false),
            Tier::T2 => (Block, Block, true, false),
            Tier::T3 => (Block, Block, false, true),
        };
        TierRule {
            hard,
            soft,
            canary,
            readiness,
        }
    }

    /// The permit for a freeze of `kind`.
    pub fn permit(&self, kind: FreezeKind) -> Permit {
        match kind {
            FreezeKind::Hard => self.hard,
            FreezeKind::Soft => self.soft,
        }
    }
}

/// A `[tiers.TN]` table: each field left out keeps that tier's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierOverride {
    pub hard: Option<Permit>,
    pub soft: Option<Permit>,
    pub canary: Option<bool>,
    pub readiness: Option<bool>,
}

/// The `[tiers]` table; a struct rather than a map so `T4` is rejected by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierOverrides {
    #[serde(rename = "T0")]
    pub t0: Option<TierOverride>,
    #[serde(rename = "T1")]
    pub t1: Option<TierOverride>,
    #[serde(rename = "T2")]
    pub t2: Option<TierOverride>,
    #[serde(rename = "T3")]
    pub t3: Option<TierOverride>,
}

impl TierOverrides {
    /// The effective rule for `tier`: its default with this file's overrides on top.
    pub fn rule(&self, tier: Tier) -> TierRule {
        let mut rule = TierRule::default_for(tier);
        let o = match tier {
            Tier::T0 => self.t0,
            Tier::T1 => self.t1,
            Tier::T2 => self.t2,
            Tier::T3 => self.t3,
        }
        .unwrap_or_default();
        rule.hard = o.hard.unwrap_or(rule.hard);
        rule.soft = o.soft.unwrap_or(rule.soft);
        rule.canary = o.canary.unwrap_or(rule.canary);
        rule.readiness = o.readiness.unwrap_or(rule.readiness);
        rule
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_order_display_and_parse() {
        assert!(Tier::T0 < Tier::T1 && Tier::T2 < Tier::T3);
        assert_eq!(Tier::T2.to_string(), "T2");
        assert_eq!("t3".parse::<Tier>().unwrap(), Tier::T3);
        assert!("T4".parse::<Tier>().unwrap_err().contains("expected T0, T1, T2 or T3"));
    }

    #[test]
    fn defaults_follow_the_seed_and_overrides_apply_per_field() {
        use Permit::*;
        let none = TierOverrides::default();
        assert_eq!(
            none.rule(Tier::T0),
            TierRule {
                hard: Exception,
                soft: Allow,
                canary: false,
                readiness: false
            }
        );
        assert_eq!(
            none.rule(Tier::T1),
            TierRule {
                hard: Block,
                soft: Exception,
                canary: false,
                readiness: false
            }
        );
        assert_eq!(
            none.rule(Tier::T2),
            TierRule {
                hard: Block,
                soft: Block,
                canary: true,
                readiness: false
            }
        );
        assert_eq!(
            none.rule(Tier::T3),
            TierRule {
                hard: Block,
                soft: Block,
                canary: false,
                readiness: true
            }
        );
        let o: TierOverrides = toml::from_str("[T3]\ncanary = true\n").unwrap();
        assert_eq!(
            o.rule(Tier::T3),
            TierRule {
                hard: Block,
                soft: Block,
                canary: true,
                readiness: true
            }
        );
        assert_eq!(o.rule(Tier::T3).permit(FreezeKind::Soft), Block);
        let err = toml::from_str::<TierOverrides>("[T1]\nsoft = \"maybe\"\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("expected one of `allow`, `exception`, `block`"),
            "{err}"
        );
    }
}
