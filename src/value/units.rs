//! Human-written quantities in files and flags: durations ("10m") and percentages ("3%").

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A duration written the human way in files and flags: "30s", "10m", "1h 30m".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub Duration);

impl Dur {
    /// Parse "10m", "30s", "1h30m"; says what is expected on failure.
    pub fn parse(s: &str) -> Result<Dur, String> {
        humantime::parse_duration(s.trim())
            .map(Dur)
            .map_err(|e| format!("invalid duration {s:?} ({e}); expected e.g. \"30s\", \"10m\", \"1h 30m\""))
    }
    /// The std duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Dur::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A percentage written as "3%" or "0.5%"; stored as a fraction of one hundred.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Percent(pub f64);

impl Percent {
    /// Parse "3%", "0.5%", "100%"; rejects negatives and values over 100.
    pub fn parse(s: &str) -> Result<Percent, String> {
        let t = s.trim();
        let num = t
            .strip_suffix('%')
            .ok_or_else(|| format!("invalid percentage {s:?}; expected a number followed by %, e.g. \"3%\""))?;
        let v: f64 = num
            .trim()
            .parse()
            .map_err(|_| format!("invalid percentage {s:?}; expected a number followed by %, e.g. \"3%\""))?;
        if !(0.0..=100.0).contains(&v) || v.is_nan() {
            return Err(format!("percentage {s:?} is out of range; expected 0% to 100%"));
        }
        Ok(Percent(v))
    }
    /// The value as a fraction (3% -> 0.03).
    pub fn fraction(self) -> f64 {
        self.0 / 100.0
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Percent::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_reject() {
        assert_eq!(Dur::parse("10m").unwrap().get(), Duration::from_secs(600));
        assert_eq!(Dur::parse("1h 30m").unwrap().get(), Duration::from_secs(5400));
        assert!(Dur::parse("ten minutes").unwrap_err().contains("expected e.g."));
    }

    #[test]
    fn percents_parse_and_reject() {
        assert_eq!(Percent::parse("3%").unwrap().fraction(), 0.03);
        assert!(Percent::parse("120%").unwrap_err().contains("out of range"));
        assert!(Percent::parse("3").unwrap_err().contains("followed by %"));
    }
}
