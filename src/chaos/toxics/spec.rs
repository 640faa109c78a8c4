//! The toxic as a user writes it ([`ToxicSpec`], serde, from a scenario or a request) and
//! its checking into a built toxic. Checking reports every problem of a spec at once, each
//! naming the field or attribute, what was found and what is expected.
//!
//! Nothing here knows what a toxic does; it only reads attributes for the builders.

use super::Toxic;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The longest delay or timeout a toxic accepts: a year is already "forever" for a run.
pub(crate) const LONGEST: Duration = Duration::from_secs(365 * 24 * 3600);

/// Which way the bytes a toxic acts on flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client to server.
    Upstream,
    /// Server to client (Toxiproxy's default).
    #[default]
    Downstream,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        })
    }
}

/// One toxic as configured, e.g. in TOML:
///
/// ```toml
/// name = "slow_answers"
/// kind = "latency"
/// stream = "downstream"   # default
/// toxicity = 0.5          # default 1: applies to every connection
/// attributes = { latency_ms = 50, jitter_ms = 5 }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToxicSpec {
    /// What `remove_toxic` finds it by; adding a toxic of an existing name replaces it.
    pub name: String,
    /// Which toxic: `latency`, `bandwidth`, `slow_close`, `timeout`, `reset_peer`,
    /// `slicer`, `limit_data` or `down`.
    pub kind: String,
    #[serde(default)]
    pub stream: Stream,
    /// Probability (0 to 1) that the toxic applies to a connection, drawn once per
    /// connection when the toxic first meets it.
    #[serde(default = "always")]
    pub toxicity: f64,
    /// The toxic's own settings; every name carries its unit (`latency_ms`, `rate_kbps`).
    #[serde(default)]
    pub attributes: BTreeMap<String, Value>,
}

fn always() -> f64 {
    1.0
}

impl ToxicSpec {
    /// Check the spec without starting anything, e.g. while validating a scenario.
    pub fn validate(&self) -> Result<(), ToxicError> {
        self.build().map(drop)
    }

    pub(crate) fn build(&self) -> Result<Arc<dyn Toxic>, ToxicError> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push(ToxicProblem::EmptyName);
        }
        if !(0.0..=1.0).contains(&self.toxicity) {
            problems.push(ToxicProblem::BadToxicity {
                found: self.toxicity,
            });
        }
        let built = match super::registered(&self.kind) {
            Some((kind, build)) => {
                let mut attributes = Attributes::new(kind, &self.attributes);
                let toxic = build(&mut attributes);
                problems.extend(attributes.finish());
                Some(toxic)
            }
            None => {
                problems.push(ToxicProblem::UnknownKind {
                    found: self.kind.clone(),
                    known: super::kinds().join(", "),
                });
                None
            }
        };
        match built {
            Some(toxic) if problems.is_empty() => Ok(toxic),
            _ => Err(ToxicError {
                toxic: self.name.clone(),
                problems,
            }),
        }
    }
}

/// A toxic spec that cannot be used, with every problem found in it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToxicError {
    /// The spec's `name`.
    pub toxic: String,
    pub problems: Vec<ToxicProblem>,
}

impl fmt::Display for ToxicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "toxic `{}`: ", self.toxic)?;
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ToxicError {}

/// One thing wrong with a toxic spec.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ToxicProblem {
    #[error("`name` is empty; give the toxic a name to remove it by")]
    EmptyName,
    #[error("`kind` = \"{found}\" is not a toxic; expected one of: {known}")]
    UnknownKind { found: String, known: String },
    #[error("`toxicity` = {found}; expected a probability from 0 to 1")]
    BadToxicity { found: f64 },
    #[error("`attributes.{attribute}` is missing; `{kind}` needs it: {expected}")]
    MissingAttribute {
        kind: String,
        attribute: String,
        expected: String,
    },
    #[error("`attributes.{attribute}` = {found}; expected {expected}")]
    BadAttribute {
        attribute: String,
        found: String,
        expected: String,
    },
    #[error("`attributes.{attribute}` does not apply to `{kind}`; it takes: {known}")]
    UnknownAttribute {
        kind: String,
        attribute: String,
        known: String,
    },
}

/// A builder's view of a spec's attributes. Each read names the attribute and what it
/// expects; a missing or bad value is recorded as a problem and read as a harmless
/// stand-in, so the builder always finishes and every problem is reported together.
pub(crate) struct Attributes<'a> {
    kind: &'static str,
    given: &'a BTreeMap<String, Value>,
    asked: Vec<&'static str>,
    problems: Vec<ToxicProblem>,
}

impl<'a> Attributes<'a> {
    pub(crate) fn new(kind: &'static str, given: &'a BTreeMap<String, Value>) -> Self {
        Attributes {
            kind,
            given,
            asked: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// A duration in milliseconds, 0 to a year; fractions allowed. `None`: required.
    pub(crate) fn millis(&mut self, name: &'static str, default: Option<u64>) -> Duration {
        self.duration(name, default, 1e3, "milliseconds")
    }

    /// A duration in microseconds, 0 to a year; fractions allowed. `None`: required.
    pub(crate) fn micros(&mut self, name: &'static str, default: Option<u64>) -> Duration {
        self.duration(name, default, 1e6, "microseconds")
    }

    /// A whole number of `unit`, at least `min`. `None`: required.
    pub(crate) fn whole(
        &mut self,
        name: &'static str,
        unit: &str,
        min: u64,
        default: Option<u64>,
    ) -> u64 {
        // Above 2^53 a JSON number is no longer exact; nobody needs a bigger count.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        let expected = format!("a whole number of {unit}, {min} or more");
        let value = self.number(name, default.map(|d| d as f64), &expected, |v| {
            v.fract() == 0.0 && v >= min as f64 && v <= EXACT
        });
        value.map_or(min, |v| v as u64)
    }

    /// Record a problem the builder found by relating attributes to each other.
    pub(crate) fn reject(&mut self, name: &'static str, expected: String) {
        let found = self
            .given
            .get(name)
            .map_or_else(|| "(default)".to_string(), Value::to_string);
        self.problems.push(ToxicProblem::BadAttribute {
            attribute: name.to_string(),
            found,
            expected,
        });
    }

    fn duration(
        &mut self,
        name: &'static str,
        default: Option<u64>,
        per_second: f64,
        unit: &str,
    ) -> Duration {
        let most = LONGEST.as_secs_f64() * per_second;
        let expected = format!("a number of {unit} from 0 to {most} (a year)");
        let value = self.number(name, default.map(|d| d as f64), &expected, |v| {
            (0.0..=most).contains(&v)
        });
        value
            .and_then(|v| Duration::try_from_secs_f64(v / per_second).ok())
            .unwrap_or(Duration::ZERO)
    }

    fn number(
        &mut self,
        name: &'static str,
        default: Option<f64>,
        expected: &str,
        valid: impl Fn(f64) -> bool,
    ) -> Option<f64> {
        self.asked.push(name);
        let Some(value) = self.given.get(name) else {
            if default.is_none() {
                self.problems.push(ToxicProblem::MissingAttribute {
                    kind: self.kind.to_string(),
                    attribute: name.to_string(),
                    expected: expected.to_string(),
                });
            }
            return default;
        };
        match value.as_f64() {
            Some(v) if v.is_finite() && valid(v) => Some(v),
            _ => {
                self.problems.push(ToxicProblem::BadAttribute {
                    attribute: name.to_string(),
                    found: value.to_string(),
                    expected: expected.to_string(),
                });
                None
            }
        }
    }

    /// The problems found, including attributes the toxic never asked for.
    pub(crate) fn finish(mut self) -> Vec<ToxicProblem> {
        for name in self.given.keys() {
            if !self.asked.contains(&name.as_str()) {
                self.problems.push(ToxicProblem::UnknownAttribute {
                    kind: self.kind.to_string(),
                    attribute: name.clone(),
                    known: if self.asked.is_empty() {
                        "no attributes".to_string()
                    } else {
                        self.asked.join(", ")
                    },
                });
            }
        }
        self.problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_spec_deserializes_with_defaults() {
        let spec: ToxicSpec = serde_json::from_value(json!({
            "name": "slow", "kind": "latency", "attributes": { "latency_ms": 50 }
        }))
        .unwrap();
        assert_eq!(spec.stream, Stream::Downstream);
        assert_eq!(spec.toxicity, 1.0);
        assert!(spec.validate().is_ok());
    }

    #[test]
    fn unknown_fields_and_streams_are_refused_by_serde() {
        let bad_field = serde_json::from_value::<ToxicSpec>(json!({
            "name": "x", "kind": "down", "strem": "upstream"
        }));
        assert!(bad_field.unwrap_err().to_string().contains("strem"));
        let bad_stream = serde_json::from_value::<ToxicSpec>(json!({
            "name": "x", "kind": "down", "stream": "sideways"
        }));
        assert!(bad_stream.unwrap_err().to_string().contains("sideways"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let spec: ToxicSpec = serde_json::from_value(json!({
            "name": " ", "kind": "latency", "toxicity": 1.5,
            "attributes": { "jitter_ms": "lots", "latncy_ms": 5 }
        }))
        .unwrap();
        let error = spec.validate().unwrap_err();
        let text = error.to_string();
        assert_eq!(error.problems.len(), 5, "{text}");
        for expected in [
            "`name` is empty",
            "`toxicity` = 1.5; expected a probability from 0 to 1",
            "`attributes.latency_ms` is missing; `latency` needs it",
            "`attributes.jitter_ms` = \"lots\"; expected a number of milliseconds",
            "`attributes.latncy_ms` does not apply to `latency`; it takes: latency_ms, jitter_ms",
        ] {
            assert!(
                text.contains(expected),
                "{text}\nshould contain: {expected}"
            );
        }
    }

    #[test]
    fn durations_and_counts_are_bounded() {
        let given: BTreeMap<String, Value> = [
            ("neg".to_string(), json!(-1)),
            ("huge".to_string(), json!(1e300)),
            ("half".to_string(), json!(0.5)),
            ("frac".to_string(), json!(2.5)),
        ]
        .into_iter()
        .collect();
        let mut attributes = Attributes::new("test", &given);
        assert_eq!(attributes.millis("neg", None), Duration::ZERO);
        assert_eq!(attributes.millis("huge", None), Duration::ZERO);
        assert_eq!(attributes.millis("half", None), Duration::from_micros(500));
        assert_eq!(attributes.whole("frac", "bytes", 1, None), 1);
        let problems = attributes.finish();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[2]
                .to_string()
                .contains("expected a whole number of bytes, 1 or more")
        );
    }

    #[test]
    fn a_toml_spec_reads_like_the_docs() {
        let spec: ToxicSpec = toml::from_str(
            r#"
            name = "slow_answers"
            kind = "latency"
            stream = "upstream"
            toxicity = 0.5
            attributes = { latency_ms = 50, jitter_ms = 5 }
            "#,
        )
        .unwrap();
        assert_eq!(spec.stream, Stream::Upstream);
        assert_eq!(spec.attributes["latency_ms"], json!(50));
        assert!(spec.validate().is_ok());
    }
}
