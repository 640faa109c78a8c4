//! Numbers that may be infinite, in the JSON contract.
//!
//! JSON has no infinity, and serde_json writes `f64::INFINITY` as `null`, which a reader
//! takes for "no data": a fault that was never recovered (`recovery.max` infinite) came back
//! from report.json as a criterion with no data. Where a figure can be infinite, the report
//! writes the string `"inf"` (or `"-inf"`) instead, and reads it back as the number. NaN,
//! which has no meaning as a figure, is still `null`.
//!
//! Never: write a finite number as anything but a JSON number.

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use std::fmt;

const INF: &str = "inf";
const NEG_INF: &str = "-inf";

fn write_f64<S: Serializer>(v: f64, s: S) -> Result<S::Ok, S::Error> {
    if v == f64::INFINITY {
        s.serialize_str(INF)
    } else if v == f64::NEG_INFINITY {
        s.serialize_str(NEG_INF)
    } else if v.is_nan() {
        s.serialize_none()
    } else {
        s.serialize_f64(v)
    }
}

/// What a JSON value read as one of these numbers can be.
enum Read {
    Null,
    Number(f64),
}

struct NumberOrInf;

impl<'de> Visitor<'de> for NumberOrInf {
    type Value = Read;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, \"inf\", \"-inf\" or null")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Read, E> {
        Ok(Read::Number(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Read, E> {
        Ok(Read::Number(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Read, E> {
        Ok(Read::Number(v as f64))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Read, E> {
        match v {
            INF | "+inf" | "infinity" | "Infinity" => Ok(Read::Number(f64::INFINITY)),
            NEG_INF | "-infinity" | "-Infinity" => Ok(Read::Number(f64::NEG_INFINITY)),
            other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<Read, E> {
        Ok(Read::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Read, E> {
        Ok(Read::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Read, D::Error> {
        d.deserialize_any(NumberOrInf)
    }
}

/// `Option<f64>`: `None` is `null` (no data), an infinite value is `"inf"`/`"-inf"`.
pub mod opt_f64 {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => write_f64(*v, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(match d.deserialize_option(NumberOrInf)? {
            Read::Null => None,
            Read::Number(v) => Some(v),
        })
    }
}

/// An `f64` that is infinite when unbounded (a fault still in effect when the run ended):
/// `"inf"` in JSON, and `null`, what reports before this contract wrote for it, read as
/// infinity.
pub mod f64_null_is_inf {
    use super::*;

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        write_f64(*v, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(match d.deserialize_option(NumberOrInf)? {
            Read::Null => f64::INFINITY,
            Read::Number(v) => v,
        })
    }
}

/// A figure for people: `no data`, `infinite`, or the number with 4 decimals.
pub fn observed_text(v: Option<f64>, unit: &str) -> String {
    match v {
        None => "no data".into(),
        Some(v) if v == f64::INFINITY => "infinite".into(),
        Some(v) if v == f64::NEG_INFINITY => "-infinite".into(),
        Some(v) if v.is_nan() => "no data".into(),
        Some(v) => match unit {
            // Enough digits to tell 0.9995 from 0.999 without rounding a FAIL into a PASS.
            "fraction" => format!("{v:.4} ({:.2}%)", v * 100.0),
            "count" if v.fract() == 0.0 => format!("{v:.0}"),
            "" => format!("{v:.4}"),
            unit if v.abs() < 10.0 => format!("{v:.3} {unit}"),
            unit => format!("{v:.2} {unit}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Both {
        #[serde(with = "super::opt_f64")]
        observed: Option<f64>,
        #[serde(with = "super::f64_null_is_inf")]
        end: f64,
    }

    fn round_trip(b: &Both) -> (String, Both) {
        let json = serde_json::to_string(b).unwrap();
        let back = serde_json::from_str(&json).unwrap();
        (json, back)
    }

    #[test]
    fn infinite_values_are_written_as_inf_and_read_back() {
        for (observed, end) in [
            (Some(f64::INFINITY), f64::INFINITY),
            (Some(f64::NEG_INFINITY), 1.5),
            (Some(1234.5), 2.0),
            (Some(0.0), 0.0),
            (None, 3.25),
        ] {
            let b = Both { observed, end };
            let (json, back) = round_trip(&b);
            assert_eq!(back, b, "through {json}");
        }
        let (json, _) = round_trip(&Both {
            observed: Some(f64::INFINITY),
            end: f64::INFINITY,
        });
        assert_eq!(json, r#"{"observed":"inf","end":"inf"}"#);
        let (json, _) = round_trip(&Both {
            observed: Some(12.0),
            end: 1.0,
        });
        assert_eq!(
            json, r#"{"observed":12.0,"end":1.0}"#,
            "numbers stay numbers"
        );
    }

    #[test]
    fn older_reports_with_null_still_read() {
        let b: Both = serde_json::from_str(r#"{"observed":null,"end":null}"#).unwrap();
        assert_eq!(b.observed, None, "null observed is no data, as before");
        assert_eq!(b.end, f64::INFINITY, "a null end was an infinite one");
        let b: Both = serde_json::from_str(r#"{"observed":5,"end":7}"#).unwrap();
        assert_eq!((b.observed, b.end), (Some(5.0), 7.0), "integers read");
    }

    #[test]
    fn nan_is_no_data_and_other_strings_are_refused() {
        let (json, back) = round_trip(&Both {
            observed: Some(f64::NAN),
            end: 1.0,
        });
        assert_eq!(json, r#"{"observed":null,"end":1.0}"#);
        assert_eq!(back.observed, None);
        let err = serde_json::from_str::<Both>(r#"{"observed":"lots","end":1}"#).unwrap_err();
        assert!(err.to_string().contains("\"inf\""), "{err}");
    }

    #[test]
    fn text_for_people() {
        assert_eq!(super::observed_text(None, "ms"), "no data");
        assert_eq!(super::observed_text(Some(f64::INFINITY), "ms"), "infinite");
        assert_eq!(super::observed_text(Some(2.0), ""), "2.0000");
        assert_eq!(super::observed_text(Some(2.0), "count"), "2");
        assert_eq!(super::observed_text(Some(20.799), "ms"), "20.80 ms");
        assert_eq!(super::observed_text(Some(0.714), "ms"), "0.714 ms");
        assert_eq!(
            super::observed_text(Some(0.99912), "fraction"),
            "0.9991 (99.91%)"
        );
    }
}
