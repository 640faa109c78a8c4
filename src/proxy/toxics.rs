//! Toxics: what the fault proxy does to the bytes, by Toxiproxy's names and parameters.
//! Each toxic applies to one direction (`upstream` = client to server, `downstream` = server
//! to client) and to a connection with probability `toxicity`, drawn once per connection.
//!
//! Each variant is small and its behaviour lives in one function of the pump (`pump.rs`);
//! adding one is a variant here, its parameters, and one arm there.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Upstream,
    Downstream,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Kind {
    /// Delay every chunk by latency ± jitter.
    Latency { latency: Duration, jitter: Duration },
    /// At most this many bytes per second.
    Bandwidth { bytes_per_s: u64 },
    /// Delay the close (FIN) by this long.
    SlowClose { delay: Duration },
    /// Pass nothing; close after `timeout` (never, when zero).
    Timeout { timeout: Duration },
    /// Reset the connection (TCP RST) after `timeout`.
    ResetPeer { timeout: Duration },
    /// Cut data into pieces of average ± variation bytes, `delay` apart.
    Slicer {
        average: usize,
        variation: usize,
        delay: Duration,
    },
    /// Close the connection after this many bytes.
    LimitData { bytes: u64 },
    /// The proxy is down: connections are closed and refused while it lasts.
    Down,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Toxic {
    pub name: String,
    #[serde(flatten)]
    pub kind: Kind,
    pub stream: Stream,
    pub toxicity: f64,
}

pub const KINDS: &str =
    "latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data, down";

impl Toxic {
    /// Build a toxic from its Toxiproxy name and attributes; `key` names it in errors.
    pub fn parse(
        name: &str,
        kind: &str,
        stream: Option<&str>,
        toxicity: Option<f64>,
        attributes: &BTreeMap<String, f64>,
        key: &str,
    ) -> Result<Toxic, String> {
        let attr = |a: &str, default: Option<f64>| -> Result<f64, String> {
            match attributes.get(a).copied().or(default) {
                Some(v) if v >= 0.0 && v.is_finite() => Ok(v),
                Some(v) => Err(format!("`{key}.attributes.{a}` = {v} must be 0 or more")),
                None => Err(format!(
                    "`{key}.attributes.{a}` is missing: toxic `{kind}` needs it"
                )),
            }
        };
        let ms = |v: f64| Duration::from_secs_f64(v / 1000.0);
        let known: &[&str] = match kind {
            "latency" => &["latency", "jitter"],
            "bandwidth" => &["rate"],
            "slow_close" => &["delay"],
            "timeout" | "reset_peer" => &["timeout"],
            "slicer" => &["average_size", "size_variation", "delay"],
            "limit_data" => &["bytes"],
            "down" => &[],
            other => {
                return Err(format!(
                    "`{key}.toxic` = \"{other}\" is not a toxic; use {KINDS}"
                ));
            }
        };
        if let Some(extra) = attributes.keys().find(|a| !known.contains(&a.as_str())) {
            return Err(format!(
                "`{key}.attributes.{extra}` does not apply to toxic `{kind}` (it takes: {})",
                if known.is_empty() {
                    "nothing".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        let kind = match kind {
            "latency" => Kind::Latency {
                latency: ms(attr("latency", None)?),
                jitter: ms(attr("jitter", Some(0.0))?),
            },
            "bandwidth" => Kind::Bandwidth {
                bytes_per_s: (attr("rate", None)? * 1024.0).max(1.0) as u64,
            },
            "slow_close" => Kind::SlowClose {
                delay: ms(attr("delay", None)?),
            },
            "timeout" => Kind::Timeout {
                timeout: ms(attr("timeout", Some(0.0))?),
            },
            "reset_peer" => Kind::ResetPeer {
                timeout: ms(attr("timeout", Some(0.0))?),
            },
            "slicer" => Kind::Slicer {
                average: attr("average_size", None)?.max(1.0) as usize,
                variation: attr("size_variation", Some(0.0))? as usize,
                delay: Duration::from_secs_f64(attr("delay", Some(0.0))? / 1e6),
            },
            "limit_data" => Kind::LimitData {
                bytes: attr("bytes", None)? as u64,
            },
            _ => Kind::Down,
        };
        let stream = match stream.unwrap_or("downstream") {
            "upstream" => Stream::Upstream,
            "downstream" => Stream::Downstream,
            other => {
                return Err(format!(
                    "`{key}.stream` = \"{other}\": use \"upstream\" (client to server) or \"downstream\""
                ));
            }
        };
        let toxicity = toxicity.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&toxicity) {
            return Err(format!(
                "`{key}.toxicity` = {toxicity} must be between 0 and 1"
            ));
        }
        Ok(Toxic {
            name: name.to_string(),
            kind,
            stream,
            toxicity,
        })
    }

    /// `KIND[:attr=value,...][@stream]`, the command-line form (`latency:latency=50@upstream`).
    pub fn parse_flag(s: &str) -> Result<Toxic, String> {
        let (body, stream) = match s.split_once('@') {
            Some((b, st)) => (b, Some(st)),
            None => (s, None),
        };
        let (kind, attrs) = body.split_once(':').unwrap_or((body, ""));
        let mut attributes = BTreeMap::new();
        for pair in attrs.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("--toxic `{s}`: `{pair}` is not attr=value"))?;
            let v: f64 = v
                .parse()
                .map_err(|_| format!("--toxic `{s}`: `{v}` is not a number"))?;
            attributes.insert(k.to_string(), v);
        }
        Toxic::parse(kind, kind, stream, None, &attributes, "--toxic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_toxiproxy_names_and_names_bad_attributes() {
        let t = Toxic::parse_flag("latency:latency=50,jitter=5@upstream").unwrap();
        assert_eq!(
            t.kind,
            Kind::Latency {
                latency: Duration::from_millis(50),
                jitter: Duration::from_millis(5)
            }
        );
        assert_eq!(t.stream, Stream::Upstream);
        assert_eq!(
            Toxic::parse_flag("bandwidth:rate=100").unwrap().kind,
            Kind::Bandwidth {
                bytes_per_s: 102_400
            }
        );
        assert_eq!(Toxic::parse_flag("down").unwrap().kind, Kind::Down);
        for (bad, hint) in [
            ("latency", "attributes.latency` is missing"),
            ("latency:latncy=5", "does not apply to toxic `latency`"),
            ("explode", "is not a toxic"),
            ("timeout@sideways", "use \"upstream\""),
            ("limit_data:bytes=-1", "must be 0 or more"),
        ] {
            let e = Toxic::parse_flag(bad).unwrap_err();
            assert!(e.contains(hint), "{bad}: {e}");
        }
    }
}
