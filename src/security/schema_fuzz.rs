//! schema_fuzz: tool arguments that break each tool's `inputSchema`: a missing required
//! property, wrong types, null, values past the bounds (min-1, max+1, maxLength+1, outside
//! an enum), an unexpected property where `additionalProperties` is false, and long unicode
//! and huge numbers where the schema allows them. Arguments the schema forbids must be
//! refused (a tool error or JSON-RPC -32602), and no case may fail the server, hang it or
//! take it down. One finding per tool: its worst case.
//!
//! Only out-of-range values are sent, never values at the edge: a value at `maximum` is valid
//! and may be expensive (`alloc` 1 GiB, `sleep` 60 s). Tools annotated
//! `destructiveHint: true` are left alone unless `allow_destructive`.

use super::input::worse;
use super::wire::{Ctx, HttpSession, StdioProc, describe_outcome, error_code, rpc, served};
use super::{Finding, Probe, Severity};
use crate::error::{CallError, excerpt};
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use serde_json::{Map, Value, json};

pub(crate) struct SchemaFuzz;

impl Probe for SchemaFuzz {
    fn name(&self) -> &'static str {
        "schema_fuzz"
    }
    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(run(ctx))
    }
}

/// One fuzz case: what it does, the arguments, and whether the schema forbids them.
#[derive(Debug, Clone)]
pub(crate) struct FuzzCase {
    pub what: String,
    pub arguments: Value,
    pub forbidden: bool,
}

/// Long unicode: emoji, combining marks, right-to-left override, zero-width joiner, NUL.
fn long_unicode() -> String {
    "👩‍💻é\u{0301}\u{202e}مرحبا\u{200d}\u{0000}漢字𝔘".repeat(1000)
}

fn wrong_type(ty: &str) -> Value {
    match ty {
        "string" => json!(12345),
        "integer" | "number" => json!("not a number"),
        "boolean" => json!("yes"),
        "array" => json!({"not": "an array"}),
        "object" => json!("not an object"),
        _ => json!([1, 2, 3]),
    }
}

/// The cases for one tool, up to `budget`, most telling first.
pub(crate) fn cases(schema: &Value, budget: usize) -> Vec<FuzzCase> {
    let base = crate::workload::schema::generate(schema, &mut rand::rng());
    let base = match base {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let props = schema
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let with = |name: &str, v: Value| {
        let mut m = base.clone();
        m.insert(name.to_string(), v);
        Value::Object(m)
    };
    let mut out = Vec::new();
    if !required.is_empty() {
        out.push(FuzzCase {
            what: "no arguments at all (required missing)".into(),
            arguments: json!({}),
            forbidden: true,
        });
    }
    // Types first, one per property, then bounds, then robustness.
    let mut bounds = Vec::new();
    let mut robust = Vec::new();
    for (name, sub) in &props {
        let ty = sub.get("type").and_then(Value::as_str);
        if let Some(ty) = ty {
            out.push(FuzzCase {
                what: format!("`{name}` of the wrong type"),
                arguments: with(name, wrong_type(ty)),
                forbidden: true,
            });
        }
        if required.contains(name) && ty.is_some() {
            bounds.push(FuzzCase {
                what: format!("`{name}` = null"),
                arguments: with(name, Value::Null),
                forbidden: true,
            });
        }
        let num = |k: &str| sub.get(k).and_then(Value::as_f64);
        let int = ty == Some("integer");
        let fmt = |v: f64| if int { json!(v as i64) } else { json!(v) };
        if let Some(max) = num("maximum") {
            bounds.push(FuzzCase {
                what: format!("`{name}` = maximum + 1"),
                arguments: with(name, fmt(max + 1.0)),
                forbidden: true,
            });
        }
        if let Some(min) = num("minimum") {
            bounds.push(FuzzCase {
                what: format!("`{name}` = minimum - 1"),
                arguments: with(name, fmt(min - 1.0)),
                forbidden: true,
            });
        }
        if let Some(x) = num("exclusiveMaximum") {
            bounds.push(FuzzCase {
                what: format!("`{name}` = exclusiveMaximum"),
                arguments: with(name, fmt(x)),
                forbidden: true,
            });
        }
        if let Some(x) = num("exclusiveMinimum") {
            bounds.push(FuzzCase {
                what: format!("`{name}` = exclusiveMinimum"),
                arguments: with(name, fmt(x)),
                forbidden: true,
            });
        }
        if let Some(max) = sub
            .get("maxLength")
            .and_then(Value::as_u64)
            .filter(|m| *m < 10_000_000)
        {
            bounds.push(FuzzCase {
                what: format!("`{name}` of maxLength + 1 characters"),
                arguments: with(name, json!("x".repeat(max as usize + 1))),
                forbidden: true,
            });
        }
        if sub
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| m > 0)
        {
            bounds.push(FuzzCase {
                what: format!("`{name}` = \"\" (below minLength)"),
                arguments: with(name, json!("")),
                forbidden: true,
            });
        }
        if sub.get("enum").and_then(Value::as_array).is_some() {
            bounds.push(FuzzCase {
                what: format!("`{name}` outside its enum"),
                arguments: with(name, json!("mcpstorm-not-in-enum")),
                forbidden: true,
            });
        }
        match ty {
            Some("string")
                if sub.get("maxLength").is_none()
                    && sub.get("enum").is_none()
                    && sub.get("format").is_none() =>
            {
                robust.push(FuzzCase {
                    what: format!("`{name}` = 10,000 characters of mixed unicode"),
                    arguments: with(name, json!(long_unicode())),
                    forbidden: false,
                });
            }
            Some("integer") if num("maximum").is_none() => {
                robust.push(FuzzCase {
                    what: format!("`{name}` = 2^64 + 1"),
                    arguments: with(
                        name,
                        serde_json::from_str("18446744073709551617").unwrap_or(json!(u64::MAX)),
                    ),
                    forbidden: true,
                });
            }
            Some("number") if num("maximum").is_none() => {
                robust.push(FuzzCase {
                    what: format!("`{name}` = 1e308"),
                    arguments: with(name, json!(1e308)),
                    forbidden: false,
                });
            }
            _ => {}
        }
    }
    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
        bounds.push(FuzzCase {
            what: "an unexpected property (additionalProperties: false)".into(),
            arguments: with("mcpstorm_unexpected", json!(1)),
            forbidden: true,
        });
    }
    out.extend(bounds);
    out.extend(robust);
    out.push(FuzzCase {
        what: "arguments that are not an object".into(),
        arguments: json!(["not", "an", "object"]),
        forbidden: true,
    });
    out.truncate(budget);
    out
}

/// How a server answered one case.
fn judge(
    tool: &str,
    case: &FuzzCase,
    answer: &Result<Value, CallError>,
    status: Option<u16>,
) -> Finding {
    let id = format!("schema_fuzz.{tool}");
    let advice = "validate tool arguments against the inputSchema before running the tool and answer violations with a tool error (isError: true) or JSON-RPC -32602";
    match answer {
        Err(CallError::Timeout { after }) => Finding::fail(
            &id,
            Severity::High,
            format!("{}: no answer within {after:?}", case.what),
        )
        .advice(advice),
        Err(CallError::HttpStatus { status, .. }) if *status >= 500 => Finding::fail(
            &id,
            Severity::Medium,
            format!("{}: HTTP {status}", case.what),
        )
        .advice(advice),
        Err(CallError::HttpStatus { status, .. }) if *status < 500 => Finding::pass(
            &id,
            Severity::Medium,
            format!("{}: refused with HTTP {status}", case.what),
        ),
        Err(e) => {
            Finding::fail(&id, Severity::Medium, format!("{}: {e}", case.what)).advice(advice)
        }
        Ok(msg) => {
            if msg.get("error").is_some() {
                return Finding::pass(
                    &id,
                    Severity::Medium,
                    format!("{}: JSON-RPC error {}", case.what, msg["error"]["code"]),
                );
            }
            let result = &msg["result"];
            if result.get("isError") == Some(&Value::Bool(true)) {
                return Finding::pass(&id, Severity::Medium, format!("{}: tool error", case.what));
            }
            if status.is_some_and(|s| s >= 500) {
                return Finding::fail(
                    &id,
                    Severity::Medium,
                    format!("{}: HTTP {}", case.what, status.unwrap_or(0)),
                )
                .advice(advice);
            }
            if case.forbidden {
                Finding::fail(
                    &id,
                    Severity::Low,
                    format!(
                        "{}: accepted, the tool ran on arguments its schema forbids",
                        case.what
                    ),
                )
                .advice(advice)
            } else {
                Finding::pass(&id, Severity::Medium, format!("{}: handled", case.what))
            }
        }
    }
}

fn eligible(ctx: &Ctx) -> (Vec<&Value>, Vec<String>) {
    let mut skipped = Vec::new();
    let tools: Vec<&Value> = ctx
        .tools
        .iter()
        .filter(|t| {
            let destructive = t["annotations"]["destructiveHint"] == Value::Bool(true);
            if destructive && !ctx.cfg.allow_destructive {
                skipped.push(t["name"].as_str().unwrap_or("?").to_string());
            }
            !destructive || ctx.cfg.allow_destructive
        })
        .take(ctx.cfg.fuzz_tools)
        .collect();
    (tools, skipped)
}

async fn run(ctx: &Ctx) -> Vec<Finding> {
    if ctx.tools.is_empty() {
        let why = if ctx.authorized {
            "the server lists no tools"
        } else {
            "no session could be opened with the credentials given, so the tools are unknown"
        };
        return vec![Finding::skip("schema_fuzz", why)];
    }
    let (tools, skipped) = eligible(ctx);
    let mut out = Vec::new();
    for name in skipped {
        out.push(Finding::skip(
            &format!("schema_fuzz.{name}"),
            "annotated destructiveHint: true; set allow_destructive to fuzz it",
        ));
    }
    let prepared: Vec<(String, Vec<FuzzCase>)> = tools
        .iter()
        .map(|tool| {
            let name = tool["name"].as_str().unwrap_or("?").to_string();
            let schema = tool
                .get("inputSchema")
                .cloned()
                .unwrap_or(json!({"type": "object"}));
            let cases = cases(&schema, ctx.cfg.fuzz_cases);
            (name, cases)
        })
        .collect();
    if ctx.is_stdio() {
        // A process per tool: several tools at a time.
        // Futures made first: a closure inside the stream trips the Send check of BoxFuture.
        let runs: Vec<_> = prepared
            .iter()
            .map(|(name, cases)| fuzz_stdio(ctx, name, cases))
            .collect();
        let found: Vec<Finding> = stream::iter(runs)
            .buffered(super::input::STDIO_PARALLEL)
            .collect()
            .await;
        out.extend(found);
        return out;
    }
    for (name, cases) in &prepared {
        if ctx.down().is_some() {
            break;
        }
        out.push(fuzz_http(ctx, name, cases).await);
    }
    out
}

fn call_body(id: u64, tool: &str, case: &FuzzCase) -> Vec<u8> {
    rpc(
        json!(id),
        "tools/call",
        Some(json!({"name": tool, "arguments": case.arguments})),
    )
}

fn shown(tool: &str, case: &FuzzCase) -> String {
    format!(
        "tools/call {tool}: {}: arguments {}",
        case.what,
        excerpt(&case.arguments.to_string(), 160)
    )
}

async fn fuzz_http(ctx: &Ctx, tool: &str, cases: &[FuzzCase]) -> Finding {
    let id = format!("schema_fuzz.{tool}");
    let Some(h) = ctx.http() else {
        return Finding::skip(&id, "no HTTP target");
    };
    let session: HttpSession = match ctx.open_session(&id, &h.good).await {
        Ok(s) => s,
        Err(e) => {
            return Finding::fail(&id, Severity::Medium, "no session for fuzzing")
                .evidence("POST /mcp initialize", e.describe());
        }
    };
    let mut worst: Option<Finding> = None;
    for (i, case) in cases.iter().enumerate() {
        let req = ctx.post(
            &session.headers,
            call_body(1000 + i as u64, tool, case),
            &[],
        );
        let r = ctx.send(&id, req).await;
        let answer = match &r {
            Ok(resp) if resp.answer().is_some() => Ok(resp.answer().cloned().unwrap_or_default()),
            Ok(resp) => Err(CallError::HttpStatus {
                status: resp.status,
                body: String::new(),
                www_authenticate: None,
            }),
            Err(e) => Err(e.clone()),
        };
        let status = r.as_ref().ok().map(|x| x.status);
        let f =
            judge(tool, case, &answer, status).evidence(shown(tool, case), describe_outcome(&r));
        let _ = served;
        worst = Some(match worst {
            None => f,
            Some(w) => worse(w, f),
        });
        if matches!(r, Err(CallError::Timeout { .. })) {
            break;
        }
    }
    ctx.close_session(&session).await;
    let f = worst.unwrap_or_else(|| Finding::skip(&id, "no case to send"));
    let f = summarize(f, cases.len());
    super::auth::after_health(ctx, f).await
}

/// A passing tool's title says how many cases; a failing one keeps its worst case.
fn summarize(f: Finding, n: usize) -> Finding {
    if f.failed() {
        f
    } else {
        let mut f = f;
        f.title = format!("{n} schema-breaking calls, each refused or handled cleanly");
        f
    }
}

async fn fuzz_stdio(ctx: &Ctx, tool: &str, cases: &[FuzzCase]) -> Finding {
    let id = format!("schema_fuzz.{tool}");
    let mut p: StdioProc = match ctx.spawn_stdio().await {
        Ok(p) => p,
        Err(e) => {
            return Finding::fail(
                &id,
                Severity::Medium,
                format!("could not start the server: {e}"),
            );
        }
    };
    let mut worst: Option<Finding> = None;
    let mut dead = false;
    for case in cases {
        let answer = p
            .request(
                "tools/call",
                Some(json!({"name": tool, "arguments": case.arguments})),
                ctx.cfg.timeout,
            )
            .await;
        let response = match &answer {
            Ok(m) => excerpt(&m.to_string(), 300),
            Err(e) => e.to_string(),
        };
        if let Ok(m) = &answer {
            ctx.record(&id, &shown(tool, case), m.to_string().as_bytes());
        }
        let mut f = judge(tool, case, &answer, None).evidence(shown(tool, case), response);
        if let Some(exit) = p.exited().await {
            f = Finding::fail(&id, Severity::Critical, format!("{}: the server process died ({exit})", case.what))
                .evidence(shown(tool, case), exit.to_string())
                .advice("a bad argument must never end the server: validate it and answer with a tool error");
            dead = true;
        }
        worst = Some(match worst {
            None => f,
            Some(w) => worse(w, f),
        });
        if dead || matches!(answer, Err(CallError::Timeout { .. })) {
            break;
        }
    }
    if !dead && let Err(e) = p.ping(ctx.cfg.health_timeout).await {
        let f = Finding::fail(
            &id,
            Severity::Critical,
            format!("the server stopped answering after the fuzz cases (ping: {e})"),
        )
        .advice("a bad argument must never hang or end the server");
        worst = Some(match worst {
            None => f,
            Some(w) => worse(w, f),
        });
    }
    p.close().await;
    let _ = error_code;
    summarize(
        worst.unwrap_or_else(|| Finding::skip(&id, "no case to send")),
        cases.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_break_the_schema_where_it_says_so() {
        let schema = json!({
            "type": "object",
            "properties": {
                "ms": {"type": "integer", "minimum": 0, "maximum": 60000},
                "name": {"type": "string", "maxLength": 8},
                "note": {"type": "string"},
                "mode": {"type": "string", "enum": ["a", "b"]}
            },
            "required": ["ms", "name"],
            "additionalProperties": false
        });
        let c = cases(&schema, 100);
        let find = |w: &str| {
            c.iter()
                .find(|x| x.what.contains(w))
                .unwrap_or_else(|| panic!("no case {w}: {c:?}"))
        };
        assert_eq!(find("required missing").arguments, json!({}));
        assert_eq!(find("`ms` = maximum + 1").arguments["ms"], json!(60001));
        assert_eq!(find("`ms` = minimum - 1").arguments["ms"], json!(-1));
        assert_eq!(
            find("`name` of maxLength + 1").arguments["name"]
                .as_str()
                .unwrap()
                .len(),
            9
        );
        assert!(find("`ms` of the wrong type").arguments["ms"].is_string());
        assert!(
            find("mixed unicode").arguments["note"]
                .as_str()
                .unwrap()
                .chars()
                .count()
                >= 10_000
        );
        assert!(!find("mixed unicode").forbidden);
        assert!(find("unexpected property").forbidden);
        assert!(find("outside its enum").forbidden);
        assert_eq!(cases(&schema, 3).len(), 3);
        // Never a value at the edge: the maximum itself is valid and may be expensive.
        assert!(
            c.iter()
                .all(|x| x.arguments.get("ms") != Some(&json!(60000)))
        );
    }

    #[test]
    fn forbidden_arguments_that_run_are_a_low_finding() {
        let case = FuzzCase {
            what: "x".into(),
            arguments: json!({}),
            forbidden: true,
        };
        let ran = Ok(json!({"jsonrpc": "2.0", "id": 1, "result": {"content": []}}));
        let f = judge("echo", &case, &ran, Some(200));
        assert!(f.failed() && f.severity == Severity::Low);
        let tool_error = Ok(json!({"result": {"content": [], "isError": true}}));
        assert!(!judge("echo", &case, &tool_error, Some(200)).failed());
        let hang = Err(CallError::Timeout {
            after: std::time::Duration::from_secs(5),
        });
        assert_eq!(judge("echo", &case, &hang, None).severity, Severity::High);
    }
}
