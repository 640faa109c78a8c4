//! The workload: who sends what, how often. Executors (closed: virtual users; open: arrival
//! rate) in `executor`, one virtual user's loop in `vu`, and the weighted operation mix here.
//!
//! The mix is either given by the scenario (with argument templates) or discovered from the
//! server's tools, with arguments generated from each tool's `inputSchema`.

pub mod executor;
pub mod schema;
pub mod template;
pub mod vu;

use crate::check::answer::{AnswerCheck, OutputSchema};
use crate::error::CallError;
use crate::metrics::OpKey;
use rand::Rng;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use template::{Ctx, Template};

/// Durations in reports and resolved scenarios read like the scenario file: "1m 30s".
pub(crate) fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    pub executor: Executor,
    #[serde(serialize_with = "ser_duration")]
    pub think_time: Duration,
    pub churn_every: u64,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub graceful_stop: Duration,
    pub allow_destructive: bool,
    pub exclude_tools: Vec<String>,
    /// Validate `structuredContent` against each tool's declared `outputSchema`.
    pub check_output_schema: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "executor", rename_all = "kebab-case")]
pub enum Executor {
    ConstantVus {
        vus: u32,
        #[serde(serialize_with = "ser_duration")]
        duration: Duration,
    },
    RampingVus {
        start_vus: u32,
        stages: Vec<Stage>,
    },
    ConstantArrivalRate {
        rate: f64,
        #[serde(serialize_with = "ser_duration")]
        duration: Duration,
        max_in_flight: u32,
        preallocate: u32,
    },
    RampingArrivalRate {
        start_rate: f64,
        stages: Vec<Stage>,
        max_in_flight: u32,
        preallocate: u32,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    #[serde(serialize_with = "ser_duration")]
    pub duration: Duration,
    pub target: f64,
}

impl Executor {
    pub fn total_duration(&self) -> Duration {
        match self {
            Executor::ConstantVus { duration, .. }
            | Executor::ConstantArrivalRate { duration, .. } => *duration,
            Executor::RampingVus { stages, .. } | Executor::RampingArrivalRate { stages, .. } => {
                stages.iter().map(|s| s.duration).sum()
            }
        }
    }

    /// The most sessions this executor will hold open at once.
    pub fn max_sessions(&self) -> usize {
        match self {
            Executor::ConstantVus { vus, .. } => *vus as usize,
            Executor::RampingVus { start_vus, stages } => stages
                .iter()
                .map(|s| s.target.ceil() as usize)
                .max()
                .unwrap_or(0)
                .max(*start_vus as usize),
            Executor::ConstantArrivalRate { max_in_flight, .. }
            | Executor::RampingArrivalRate { max_in_flight, .. } => *max_in_flight as usize,
        }
    }
}

/// The target value (VUs or arrivals/s) at `t` into a staged ramp: linear within a stage.
pub fn staged_value(start: f64, stages: &[Stage], t: Duration) -> f64 {
    let mut from = start;
    let mut elapsed = Duration::ZERO;
    for s in stages {
        if t < elapsed + s.duration {
            let frac = (t - elapsed).as_secs_f64() / s.duration.as_secs_f64().max(1e-9);
            return from + (s.target - from) * frac;
        }
        elapsed += s.duration;
        from = s.target;
    }
    from
}

#[derive(Debug, Clone)]
pub struct OpSpec {
    pub weight: u32,
    pub kind: OpKind,
    pub timeout: Option<Duration>,
    /// What a correct answer is (`check` / `expect`).
    pub check: Option<Arc<AnswerCheck>>,
}

#[derive(Debug, Clone)]
pub enum OpKind {
    CallTool { tool: String, arguments: Template },
    ListTools,
    ReadResource { uri: String },
    GetPrompt { name: String, arguments: Template },
    Ping,
}

impl OpSpec {
    pub fn describe(&self) -> String {
        let what = match &self.kind {
            OpKind::CallTool { tool, .. } => format!("tools/call {tool}"),
            OpKind::ListTools => "tools/list".into(),
            OpKind::ReadResource { uri } => format!("resources/read {uri}"),
            OpKind::GetPrompt { name, .. } => format!("prompts/get {name}"),
            OpKind::Ping => "ping".into(),
        };
        let check = self.check.as_ref().map(|c| {
            let mut parts = Vec::new();
            if let Some(e) = &c.expr {
                parts.push(format!("check `{}`", e.source));
            }
            if let Some(v) = &c.expect {
                parts.push(format!("expect {v}"));
            }
            format!(", {}", parts.join(", "))
        });
        format!(
            "{what} (weight {}{})",
            self.weight,
            check.unwrap_or_default()
        )
    }
}

/// How one entry builds its params.
#[derive(Debug)]
enum Params {
    None,
    Fixed(Value),
    /// `{"name": .., "arguments": <template>}` or the prompt equivalent.
    Named {
        name: String,
        arguments: Template,
    },
    /// Pre-generated valid argument sets for a discovered tool.
    Variants {
        name: String,
        variants: Vec<Value>,
    },
}

#[derive(Debug)]
pub struct MixEntry {
    pub key: OpKey,
    /// A write the ledger tracks (its id is the call's `{{seq}}`).
    pub ledger: bool,
    pub method: &'static str,
    params: Params,
    pub timeout: Option<Duration>,
    weight: u32,
    check: Option<Arc<AnswerCheck>>,
    /// The tool's declared `outputSchema`, compiled.
    schema: Option<OutputSchema>,
}

impl MixEntry {
    /// Is this answer right? `params` are the ones sent; only the answer's shape, the
    /// scenario's check and the tool's outputSchema are judged here.
    pub fn judge(&self, result: &Value, params: Option<&Value>) -> Result<(), CallError> {
        let args = params.and_then(|p| p.get("arguments"));
        crate::check::answer::judge(
            self.method,
            result,
            args,
            self.check.as_deref(),
            self.schema.as_ref(),
        )
    }

    pub fn params<R: Rng>(&self, ctx: &mut Ctx<'_, R>) -> Option<Value> {
        match &self.params {
            Params::None => None,
            Params::Fixed(v) => Some(v.clone()),
            Params::Named { name, arguments } => {
                Some(json!({"name": name, "arguments": arguments.render(ctx)}))
            }
            Params::Variants { name, variants } => {
                let args = variants[ctx.rng.random_range(0..variants.len())].clone();
                Some(json!({"name": name, "arguments": args}))
            }
        }
    }
}

/// The weighted list of operations one iteration picks from.
#[derive(Debug)]
pub struct Mix {
    entries: Vec<MixEntry>,
    total_weight: u64,
    pub skipped: Vec<String>,
}

/// Argument sets generated per discovered tool; picked at random per call.
const VARIANTS_PER_TOOL: usize = 8;

impl Mix {
    pub fn from_specs(specs: &[OpSpec]) -> Mix {
        let entries = specs
            .iter()
            .map(|s| {
                let (method, tool, params) = match &s.kind {
                    OpKind::CallTool { tool, arguments } => (
                        "tools/call",
                        Some(tool.clone()),
                        Params::Named {
                            name: tool.clone(),
                            arguments: arguments.clone(),
                        },
                    ),
                    OpKind::ListTools => ("tools/list", None, Params::None),
                    OpKind::Ping => ("ping", None, Params::None),
                    OpKind::ReadResource { uri } => {
                        ("resources/read", None, Params::Fixed(json!({"uri": uri})))
                    }
                    OpKind::GetPrompt { name, arguments } => (
                        "prompts/get",
                        None,
                        Params::Named {
                            name: name.clone(),
                            arguments: arguments.clone(),
                        },
                    ),
                };
                MixEntry {
                    key: OpKey { method, tool },
                    ledger: false,
                    method,
                    params,
                    timeout: s.timeout,
                    weight: s.weight,
                    check: s.check.clone(),
                    schema: None,
                }
            })
            .collect();
        Self::weighted(entries, Vec::new())
    }

    /// Every callable tool of a `tools/list` answer, with generated arguments.
    pub fn discovered(tools: &[Value], workload: &Workload) -> Result<Mix, String> {
        let mut rng = rand::rng();
        let mut entries = Vec::new();
        let mut skipped = Vec::new();
        for t in tools {
            let Some(name) = t.get("name").and_then(Value::as_str) else {
                continue;
            };
            if workload.exclude_tools.iter().any(|x| x == name) {
                skipped.push(format!("{name} (excluded by workload.exclude_tools)"));
                continue;
            }
            let destructive = t
                .pointer("/annotations/destructiveHint")
                .and_then(Value::as_bool)
                == Some(true);
            if destructive && !workload.allow_destructive {
                skipped.push(format!("{name} (annotated destructiveHint; set workload.allow_destructive = true to call it)"));
                continue;
            }
            let schema = t
                .get("inputSchema")
                .cloned()
                .unwrap_or(json!({"type": "object"}));
            let variants = (0..VARIANTS_PER_TOOL)
                .map(|_| schema::generate(&schema, &mut rng))
                .collect();
            entries.push(MixEntry {
                key: OpKey {
                    method: "tools/call",
                    tool: Some(name.to_string()),
                },
                ledger: false,
                method: "tools/call",
                params: Params::Variants {
                    name: name.to_string(),
                    variants,
                },
                timeout: None,
                weight: 1,
                check: None,
                schema: None,
            });
        }
        if entries.is_empty() {
            return Err(if skipped.is_empty() {
                "the server lists no tools, so there is nothing to call; give a [[mix]] in the scenario".to_string()
            } else {
                format!(
                    "every tool was skipped: {}; give a [[mix]] or change the workload",
                    skipped.join(", ")
                )
            });
        }
        Ok(Self::weighted(entries, skipped))
    }

    /// Add the ledger's write to the mix, at its weight.
    pub fn with_ledger(mut self, spec: &crate::check::ledger::LedgerSpec) -> Mix {
        self.entries.push(MixEntry {
            key: OpKey {
                method: "tools/call",
                tool: Some(spec.write.tool.clone()),
            },
            ledger: true,
            method: "tools/call",
            params: Params::Named {
                name: spec.write.tool.clone(),
                arguments: spec.write.arguments.clone(),
            },
            timeout: None,
            weight: spec.weight,
            check: None,
            schema: None,
        });
        self.total_weight += spec.weight as u64;
        self
    }

    /// Attach each tool's compiled `outputSchema` to the calls of that tool.
    pub fn with_output_schemas(mut self, schemas: &HashMap<String, OutputSchema>) -> Mix {
        for e in &mut self.entries {
            if let Some(tool) = &e.key.tool {
                e.schema = schemas.get(tool).cloned();
            }
        }
        self
    }

    /// Does any entry call a tool (so the tools' output schemas matter)?
    pub fn calls_tools(&self) -> bool {
        self.entries.iter().any(|e| e.method == "tools/call")
    }

    fn weighted(entries: Vec<MixEntry>, skipped: Vec<String>) -> Mix {
        let total_weight = entries.iter().map(|e| e.weight as u64).sum();
        Mix {
            entries,
            total_weight,
            skipped,
        }
    }

    pub fn pick<R: Rng>(&self, rng: &mut R) -> &MixEntry {
        let mut x = rng.random_range(0..self.total_weight.max(1));
        for e in &self.entries {
            if x < e.weight as u64 {
                return e;
            }
            x -= e.weight as u64;
        }
        &self.entries[self.entries.len() - 1]
    }

    pub fn names(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.key.label()).collect()
    }

    pub fn max_random(specs: &[OpSpec]) -> usize {
        specs
            .iter()
            .map(|s| match &s.kind {
                OpKind::CallTool { arguments, .. } | OpKind::GetPrompt { arguments, .. } => {
                    arguments.max_random()
                }
                _ => 0,
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_interpolate_linearly() {
        let stages = vec![
            Stage {
                duration: Duration::from_secs(10),
                target: 10.0,
            },
            Stage {
                duration: Duration::from_secs(10),
                target: 10.0,
            },
            Stage {
                duration: Duration::from_secs(10),
                target: 0.0,
            },
        ];
        assert_eq!(staged_value(0.0, &stages, Duration::from_secs(5)), 5.0);
        assert_eq!(staged_value(0.0, &stages, Duration::from_secs(15)), 10.0);
        assert_eq!(staged_value(0.0, &stages, Duration::from_secs(25)), 5.0);
        assert_eq!(staged_value(0.0, &stages, Duration::from_secs(99)), 0.0);
    }

    #[test]
    fn picks_follow_weights_and_discovery_skips_what_it_must() {
        let specs = vec![
            OpSpec {
                weight: 3,
                kind: OpKind::Ping,
                timeout: None,
                check: None,
            },
            OpSpec {
                weight: 1,
                kind: OpKind::ListTools,
                timeout: None,
                check: None,
            },
        ];
        let mix = Mix::from_specs(&specs);
        let mut rng = rand::rng();
        let pings = (0..10_000)
            .filter(|_| mix.pick(&mut rng).method == "ping")
            .count();
        assert!((7000..8000).contains(&pings), "{pings}");

        let tools = vec![
            json!({"name": "safe", "inputSchema": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}),
            json!({"name": "rm", "annotations": {"destructiveHint": true}, "inputSchema": {"type": "object"}}),
            json!({"name": "gzip", "inputSchema": {"type": "object"}}),
        ];
        let workload = Workload {
            executor: Executor::ConstantVus {
                vus: 1,
                duration: Duration::from_secs(1),
            },
            think_time: Duration::ZERO,
            churn_every: 0,
            timeout: Duration::from_secs(1),
            graceful_stop: Duration::from_secs(1),
            allow_destructive: false,
            exclude_tools: vec!["gzip".into()],
            check_output_schema: true,
        };
        let mix = Mix::discovered(&tools, &workload).unwrap();
        assert_eq!(mix.names(), vec!["tools/call safe"]);
        assert_eq!(mix.skipped.len(), 2);
    }
}
