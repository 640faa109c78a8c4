//! Custom WebSocket framings: servers that wrap their calls in an envelope of their own, for
//! example a daemon that wants `{"op":"hello","token":..}` answered by `{"op":"hello_ack"}`,
//! then `{"op":"call_tool","request_id":..,"name":..,"arguments":..}` answered by
//! `{"op":"call_tool_res","request_id":..,"result":..}`.
//!
//! A framing is declared in the scenario (`[target.framing]`), never coded: a hello exchange
//! (a frame to send and the fields the answer must have), one frame template per MCP method
//! it maps, and where an answer keeps the request's id, its result and its error. Templates
//! are TOML tables; a string that is exactly one placeholder becomes that JSON value (a
//! number, an object), a placeholder inside a longer string is written as text. This file
//! only builds and reads frames; the WebSocket transport moves them.

use crate::error::{CallError, excerpt};
use crate::session::{Era, ServerInfo};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The methods a framing may map.
const METHODS: &[&str] = &[
    "tools/call",
    "tools/list",
    "resources/read",
    "resources/list",
    "prompts/get",
    "prompts/list",
    "ping",
];

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawFraming {
    /// The secret `{{token}}` stands for; may itself be `{{env.NAME}}`.
    pub token: Option<String>,
    pub hello: Option<RawHello>,
    /// MCP method → frame template.
    pub requests: Option<BTreeMap<String, toml::Value>>,
    pub response: Option<RawResponse>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawHello {
    pub send: Option<toml::Value>,
    /// Fields the first frame after the hello must have (a subset match).
    pub expect: Option<toml::Value>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawResponse {
    /// Dotted path to the field holding the request's id.
    pub id: Option<String>,
    /// Dotted path to the result (default: the whole frame).
    pub result: Option<String>,
    /// Dotted path to a field whose presence (not null, not false) makes the answer an error.
    pub error: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// A validated framing.
#[derive(Debug, Clone, PartialEq)]
pub struct Framing {
    hello: Option<(Node, Value)>,
    requests: BTreeMap<String, Node>,
    id: Vec<String>,
    result: Option<Vec<String>>,
    error: Option<Vec<String>>,
    error_code: Option<Vec<String>>,
    error_message: Option<Vec<String>>,
    /// As written in the scenario, with the token redacted: what reports show.
    pub shown: Value,
}

/// A compiled frame template.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Lit(Value),
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    Whole(Slot),
    Text(Vec<Piece>),
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(String),
    Slot(Slot),
}

#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Id,
    Method,
    /// `params` (empty path) or `params.a.b`.
    Params(Vec<String>),
}

/// What a request frame is built from.
pub(crate) struct Request<'a> {
    pub id: u64,
    pub method: &'a str,
    pub params: Option<&'a Value>,
}

/// A request frame, and the texts its id was written into (`"req-{{id}}"`), which an answer
/// may echo back.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub frame: String,
    pub id_texts: Vec<String>,
}

impl Framing {
    /// Validate `[target.framing]`; every problem is pushed with its key.
    pub fn from_raw(
        raw: &RawFraming,
        env: &dyn Fn(&str) -> Option<String>,
        p: &mut Vec<String>,
    ) -> Option<Framing> {
        let before = p.len();
        let key = "target.framing";
        let token = raw.token.as_ref().map(|t| {
            let c = Compiler {
                env,
                token: None,
                requests: false,
            };
            match c.text(t, &format!("{key}.token"), p) {
                Node::Lit(Value::String(s)) => s,
                _ => String::new(),
            }
        });
        let hello = raw.hello.as_ref().and_then(|h| {
            let c = Compiler { env, token: token.as_deref(), requests: false };
            let send = match &h.send {
                Some(v @ toml::Value::Table(_)) => Some(c.node(&to_json(v), &format!("{key}.hello.send"), p)),
                Some(_) => {
                    p.push(format!("`{key}.hello.send` must be a table, the frame to send, like {{ op = \"hello\", token = \"{{{{token}}}}\" }}"));
                    None
                }
                None => {
                    p.push(format!("`{key}.hello.send` is missing: the frame to send after connecting, like {{ op = \"hello\", token = \"{{{{token}}}}\" }}"));
                    None
                }
            };
            let expect = match &h.expect {
                Some(v @ toml::Value::Table(_)) => to_json(v),
                Some(_) => {
                    p.push(format!("`{key}.hello.expect` must be a table of the fields the answer must have, like {{ op = \"hello_ack\" }}"));
                    Value::Null
                }
                None => Value::Object(Map::new()),
            };
            send.map(|s| (s, expect))
        });
        let mut requests = BTreeMap::new();
        match &raw.requests {
            None => p.push(format!("`{key}.requests` is missing: map at least one MCP method to a frame, like [target.framing.requests.\"tools/call\"] with op = \"call_tool\", request_id = \"{{{{id}}}}\", name = \"{{{{params.name}}}}\", arguments = \"{{{{params.arguments}}}}\"")),
            Some(r) if r.is_empty() => p.push(format!("`{key}.requests` is empty: map at least one MCP method to a frame")),
            Some(r) => {
                let c = Compiler { env, token: token.as_deref(), requests: true };
                for (method, template) in r {
                    let k = format!("{key}.requests.\"{method}\"");
                    if !METHODS.contains(&method.as_str()) {
                        p.push(format!("`{k}`: `{method}` is not a method a framing can map; use one of {}", METHODS.join(", ")));
                        continue;
                    }
                    if !template.is_table() {
                        p.push(format!("`{k}` must be a table, the frame to send"));
                        continue;
                    }
                    requests.insert(method.clone(), c.node(&to_json(template), &k, p));
                }
            }
        }
        let response = raw.response.clone().unwrap_or_default();
        let path = |v: &Option<String>, name: &str, p: &mut Vec<String>| -> Option<Vec<String>> {
            let s = v.as_ref()?;
            let parts: Vec<String> = s.split('.').map(str::to_string).collect();
            if parts.iter().any(String::is_empty) {
                p.push(format!("`{key}.response.{name}` = \"{s}\" is not a field path; write it like \"request_id\" or \"error.message\""));
            }
            Some(parts)
        };
        let id = path(&response.id, "id", p);
        if id.is_none() {
            p.push(format!("`{key}.response.id` is missing: the field of an answer that holds the request's id, like \"request_id\""));
        }
        let framing = Framing {
            hello,
            requests,
            id: id.unwrap_or_default(),
            result: path(&response.result, "result", p),
            error: path(&response.error, "error", p),
            error_code: path(&response.error_code, "error_code", p),
            error_message: path(&response.error_message, "error_message", p),
            shown: shown(raw),
        };
        (p.len() == before).then_some(framing)
    }

    /// Does the framing map `method`?
    pub fn maps(&self, method: &str) -> bool {
        self.requests.contains_key(method)
    }

    /// The methods it maps, for error messages.
    pub fn methods(&self) -> Vec<&str> {
        self.requests.keys().map(String::as_str).collect()
    }

    /// The hello frame and what its answer must contain, if there is a hello.
    pub(crate) fn hello(&self) -> Option<(String, &Value)> {
        let (send, expect) = self.hello.as_ref()?;
        let empty = Request {
            id: 0,
            method: "",
            params: None,
        };
        Some((render(send, &empty, &mut Vec::new()).to_string(), expect))
    }

    /// Is `frame` the answer the hello wants?
    pub(crate) fn hello_accepted(expect: &Value, frame: &str) -> bool {
        serde_json::from_str::<Value>(frame).is_ok_and(|v| contains(&v, expect))
    }

    pub(crate) fn encode(&self, req: &Request<'_>) -> Result<Encoded, CallError> {
        let Some(template) = self.requests.get(req.method) else {
            return Err(CallError::Protocol {
                detail: format!(
                    "the framing has no frame for `{}`; it maps {}: add [target.framing.requests.\"{}\"]",
                    req.method,
                    self.methods().join(", "),
                    req.method
                ),
            });
        };
        let mut id_texts = Vec::new();
        let frame = render(template, req, &mut id_texts).to_string();
        Ok(Encoded { frame, id_texts })
    }

    /// Place one frame relative to request `want`: `None` when it is not the answer (an
    /// event, or the answer to an earlier request that timed out).
    pub(crate) fn decode(
        &self,
        frame: &[u8],
        want: u64,
        id_texts: &[String],
        method: &str,
    ) -> Option<Result<Value, CallError>> {
        let v: Value = match serde_json::from_slice(frame) {
            Ok(v) => v,
            Err(e) => {
                return Some(Err(CallError::Protocol {
                    detail: format!(
                        "the server sent a frame that is not JSON ({e}): {}",
                        excerpt(&String::from_utf8_lossy(frame), 120)
                    ),
                }));
            }
        };
        let id = at(&v, &self.id)?;
        let ours = match id {
            Value::Number(n) => n.as_u64() == Some(want),
            Value::String(s) => {
                s.parse::<u64>().ok() == Some(want) || id_texts.iter().any(|t| t == s)
            }
            _ => false,
        };
        if !ours {
            return None;
        }
        if let Some(err) = self
            .error
            .as_ref()
            .and_then(|p| at(&v, p))
            .filter(|e| !matches!(e, Value::Null | Value::Bool(false)))
        {
            let message = match self.error_message.as_ref().and_then(|p| at(&v, p)) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => match err {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            };
            let message = excerpt(&message, 200);
            let code = self
                .error_code
                .as_ref()
                .and_then(|p| at(&v, p))
                .and_then(Value::as_i64);
            return Some(Err(match code {
                Some(code) => CallError::JsonRpc { code, message },
                None => CallError::ToolError { text: message },
            }));
        }
        let result = match &self.result {
            None => v.clone(),
            Some(p) => match at(&v, p) {
                Some(r) => r.clone(),
                None => {
                    return Some(Err(CallError::Protocol {
                        detail: format!(
                            "the answer to request {want} has no `{}`: {}",
                            p.join("."),
                            excerpt(&v.to_string(), 120)
                        ),
                    }));
                }
            },
        };
        Some(Ok(if method == "tools/call" {
            as_tool_result(result)
        } else {
            result
        }))
    }

    /// What the session knows of a server it reaches through this framing.
    pub(crate) fn server_info(&self) -> ServerInfo {
        let mut caps = Map::new();
        for (cap, methods) in [
            ("tools", ["tools/call", "tools/list"]),
            ("resources", ["resources/read", "resources/list"]),
            ("prompts", ["prompts/get", "prompts/list"]),
        ] {
            if methods.iter().any(|m| self.maps(m)) {
                caps.insert(cap.into(), json!({}));
            }
        }
        ServerInfo {
            name: "(custom framing)".into(),
            version: String::new(),
            protocol_version: "custom framing".into(),
            era: Era::Framing,
            capabilities: Value::Object(caps),
            instructions: None,
        }
    }
}

/// A daemon's own result shape, presented as a `tools/call` result: kept whole in
/// `structuredContent` and as text, so checks and the figures treat it like any other.
fn as_tool_result(result: Value) -> Value {
    if result.get("content").is_some_and(Value::is_array) {
        return result;
    }
    let text = match &result {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    json!({"content": [{"type": "text", "text": text}], "structuredContent": result})
}

fn at<'v>(v: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// Does `actual` have every field of `expected` (recursively), with the same values?
fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e
            .iter()
            .all(|(k, ev)| a.get(k).is_some_and(|av| contains(av, ev))),
        (a, e) => a == e,
    }
}

fn to_json(v: &toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn shown(raw: &RawFraming) -> Value {
    let mut v = serde_json::to_value(RawShown {
        token: raw.token.as_ref().map(|t| if t.contains("{{env.") { t.clone() } else { "<redacted>".into() }),
        hello: raw.hello.as_ref().map(|h| json!({"send": h.send.as_ref().map(to_json), "expect": h.expect.as_ref().map(to_json)})),
        requests: raw.requests.as_ref().map(|r| r.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    })
    .unwrap_or(Value::Null);
    if let (Some(r), Value::Object(o)) = (&raw.response, &mut v) {
        o.insert("response".into(), json!({"id": r.id, "result": r.result, "error": r.error, "error_code": r.error_code, "error_message": r.error_message}));
    }
    v
}

#[derive(serde::Serialize)]
struct RawShown {
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hello: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    requests: Option<BTreeMap<String, Value>>,
}

/// Compiles templates; `{{env.NAME}}` and `{{token}}` are filled in here, once.
struct Compiler<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    token: Option<&'a str>,
    /// Request templates may use `{{id}}`, `{{method}}` and `{{params...}}`.
    requests: bool,
}

impl Compiler<'_> {
    fn node(&self, v: &Value, key: &str, p: &mut Vec<String>) -> Node {
        match v {
            Value::Object(o) => Node::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), self.node(v, &format!("{key}.{k}"), p)))
                    .collect(),
            ),
            Value::Array(a) => Node::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, v)| self.node(v, &format!("{key}[{i}]"), p))
                    .collect(),
            ),
            Value::String(s) if s.contains("{{") => self.text(s, key, p),
            other => Node::Lit(other.clone()),
        }
    }

    /// A string with placeholders: one whole placeholder keeps its JSON type.
    fn text(&self, s: &str, key: &str, p: &mut Vec<String>) -> Node {
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start..].find("}}") else {
                p.push(format!(
                    "`{key}`: `{{{{` without a closing `}}}}` in \"{s}\""
                ));
                return Node::Lit(Value::String(s.into()));
            };
            if start > 0 {
                pieces.push(Piece::Lit(rest[..start].to_string()));
            }
            let name = rest[start + 2..start + len].trim();
            match self.slot(name, key, p) {
                Some(Ok(slot)) => pieces.push(Piece::Slot(slot)),
                Some(Err(text)) => pieces.push(Piece::Lit(text)),
                None => {}
            }
            rest = &rest[start + len + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Lit(rest.to_string()));
        }
        match pieces.as_slice() {
            [Piece::Slot(slot)] => Node::Whole(slot.clone()),
            _ if pieces.iter().all(|x| matches!(x, Piece::Lit(_))) => Node::Lit(Value::String(
                pieces
                    .into_iter()
                    .map(|x| {
                        if let Piece::Lit(t) = x {
                            t
                        } else {
                            String::new()
                        }
                    })
                    .collect(),
            )),
            _ => Node::Text(pieces),
        }
    }

    /// A placeholder: a slot filled per request, or text known now (`Err`).
    fn slot(&self, name: &str, key: &str, p: &mut Vec<String>) -> Option<Result<Slot, String>> {
        if let Some(var) = name.strip_prefix("env.") {
            return match (self.env)(var) {
                Some(v) => Some(Err(v)),
                None => {
                    p.push(format!("`{key}`: `{{{{env.{var}}}}}` but the environment variable {var} is not set; export it before running"));
                    None
                }
            };
        }
        if name == "token" {
            return match self.token {
                Some(t) => Some(Err(t.to_string())),
                None => {
                    p.push(format!(
                        "`{key}` uses `{{{{token}}}}` but `target.framing.token` is not set"
                    ));
                    None
                }
            };
        }
        let slot = match name {
            "id" => Slot::Id,
            "method" => Slot::Method,
            "params" => Slot::Params(vec![]),
            _ => match name.strip_prefix("params.") {
                Some(path) if !path.is_empty() => {
                    Slot::Params(path.split('.').map(str::to_string).collect())
                }
                _ => {
                    p.push(format!("`{key}`: `{{{{{name}}}}}` is not a placeholder; use {{{{id}}}}, {{{{method}}}}, {{{{params}}}}, {{{{params.NAME}}}}, {{{{token}}}} or {{{{env.NAME}}}}"));
                    return None;
                }
            },
        };
        if !self.requests {
            p.push(format!("`{key}`: `{{{{{name}}}}}` only applies to request frames; the hello and the token know {{{{token}}}} and {{{{env.NAME}}}}"));
            return None;
        }
        Some(Ok(slot))
    }
}

fn render(node: &Node, req: &Request<'_>, id_texts: &mut Vec<String>) -> Value {
    match node {
        Node::Lit(v) => v.clone(),
        Node::Object(o) => Value::Object(
            o.iter()
                .map(|(k, n)| (k.clone(), render(n, req, id_texts)))
                .collect(),
        ),
        Node::Array(a) => Value::Array(a.iter().map(|n| render(n, req, id_texts)).collect()),
        Node::Whole(slot) => fill(slot, req),
        Node::Text(pieces) => {
            let mut s = String::new();
            for piece in pieces {
                match piece {
                    Piece::Lit(t) => s.push_str(t),
                    Piece::Slot(slot) => match fill(slot, req) {
                        Value::String(t) => s.push_str(&t),
                        Value::Null => {}
                        other => s.push_str(&other.to_string()),
                    },
                }
            }
            if pieces.iter().any(|x| matches!(x, Piece::Slot(Slot::Id))) {
                id_texts.push(s.clone());
            }
            Value::String(s)
        }
    }
}

fn fill(slot: &Slot, req: &Request<'_>) -> Value {
    match slot {
        Slot::Id => json!(req.id),
        Slot::Method => json!(req.method),
        Slot::Params(path) => req
            .params
            .and_then(|p| at(p, path))
            .cloned()
            .unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon(extra: &str) -> Result<Framing, Vec<String>> {
        let text = format!(
            r#"
token = "{{{{env.DAEMON_TOKEN}}}}"
{extra}
[hello]
send = {{ op = "hello", token = "{{{{token}}}}" }}
expect = {{ op = "hello_ack" }}
[requests."tools/call"]
op = "call_tool"
request_id = "{{{{id}}}}"
name = "{{{{params.name}}}}"
arguments = "{{{{params.arguments}}}}"
[response]
id = "request_id"
result = "result"
error = "error"
error_message = "error.message"
"#
        );
        let raw: RawFraming = toml::from_str(&text).map_err(|e| vec![e.to_string()])?;
        let env = |k: &str| (k == "DAEMON_TOKEN").then(|| "s3cret".to_string());
        let mut p = Vec::new();
        Framing::from_raw(&raw, &env, &mut p).ok_or(p)
    }

    #[test]
    fn the_issue_example_round_trips() {
        let f = daemon("").unwrap();
        let (hello, expect) = f.hello().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&hello).unwrap(),
            json!({"op": "hello", "token": "s3cret"})
        );
        assert!(Framing::hello_accepted(
            expect,
            r#"{"op":"hello_ack","session":"x"}"#
        ));
        assert!(!Framing::hello_accepted(expect, r#"{"op":"hello_nack"}"#));
        let params = json!({"name": "echo", "arguments": {"message": "hi"}});
        let e = f
            .encode(&Request {
                id: 7,
                method: "tools/call",
                params: Some(&params),
            })
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&e.frame).unwrap(),
            json!({"op": "call_tool", "request_id": 7, "name": "echo", "arguments": {"message": "hi"}})
        );
        let ok = f
            .decode(
                br#"{"op":"call_tool_res","request_id":7,"result":{"echo":"hi"}}"#,
                7,
                &[],
                "tools/call",
            )
            .unwrap()
            .unwrap();
        assert_eq!(ok["structuredContent"], json!({"echo": "hi"}));
        assert!(ok["content"][0]["text"].as_str().unwrap().contains("hi"));
        let err = f
            .decode(
                br#"{"op":"call_tool_res","request_id":7,"error":{"message":"no such tool"}}"#,
                7,
                &[],
                "tools/call",
            )
            .unwrap()
            .unwrap_err();
        assert_eq!(err.to_string(), "tool returned isError: no such tool");
        assert!(
            f.decode(br#"{"op":"event"}"#, 7, &[], "tools/call")
                .is_none(),
            "no id: an event"
        );
        assert!(
            f.decode(br#"{"request_id":6,"result":1}"#, 7, &[], "tools/call")
                .is_none(),
            "stale"
        );
        assert!(
            f.encode(&Request {
                id: 1,
                method: "tools/list",
                params: None
            })
            .unwrap_err()
            .to_string()
            .contains("requests.\"tools/list\"")
        );
        assert!(!f.shown.to_string().contains("s3cret"), "{}", f.shown);
    }

    #[test]
    fn ids_written_into_text_are_matched_back() {
        let raw: RawFraming = toml::from_str(
            "[requests.ping]\nop = \"ping\"\nrid = \"req-{{id}}\"\n[response]\nid = \"rid\"\n",
        )
        .unwrap();
        let f = Framing::from_raw(&raw, &|_| None, &mut Vec::new()).unwrap();
        let e = f
            .encode(&Request {
                id: 12,
                method: "ping",
                params: None,
            })
            .unwrap();
        assert_eq!(e.id_texts, vec!["req-12".to_string()]);
        assert!(
            f.decode(br#"{"rid":"req-12","ok":true}"#, 12, &e.id_texts, "ping")
                .unwrap()
                .is_ok()
        );
    }

    #[test]
    fn every_problem_names_its_key() {
        let raw: RawFraming = toml::from_str(
            r#"
[hello]
send = { op = "hello", id = "{{id}}", t = "{{token}}", e = "{{env.NOPE_NOT_SET}}" }
[requests."tools/frob"]
op = "x"
[requests."tools/call"]
op = "call"
name = "{{param.name}}"
[response]
result = "a..b"
"#,
        )
        .unwrap();
        let mut p = Vec::new();
        assert!(Framing::from_raw(&raw, &|_| None, &mut p).is_none());
        let all = p.join("\n");
        for needle in [
            "target.framing.hello.send.id",
            "target.framing.hello.send.t",
            "NOPE_NOT_SET",
            "requests.\"tools/frob\"",
            "`{{param.name}}` is not a placeholder",
            "target.framing.response.result",
            "target.framing.response.id` is missing",
        ] {
            assert!(all.contains(needle), "missing {needle} in:\n{all}");
        }
    }
}
