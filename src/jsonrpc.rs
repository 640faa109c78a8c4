//! JSON-RPC 2.0 messages as MCP uses them, typed at the edge.
//!
//! The load path builds requests itself (not through rmcp) because it needs exact control of
//! bytes and timing; these are the few types it needs. Nothing here does I/O.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A request or notification we send. `id: None` makes it a notification.
#[derive(Debug, Clone, Serialize)]
pub struct Outgoing<'a> {
    pub jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub method: &'a str,
    #[serde(skip_serializing_if = "Params::is_empty")]
    pub params: Params<'a>,
}

impl<'a> Outgoing<'a> {
    pub fn request(id: u64, method: &'a str, params: Option<&'a Value>) -> Self {
        Self {
            jsonrpc: "2.0",
            id: Some(id),
            method,
            params: Params { params, meta: None },
        }
    }
    pub fn notification(method: &'a str, params: Option<&'a Value>) -> Self {
        Self {
            jsonrpc: "2.0",
            id: None,
            method,
            params: Params { params, meta: None },
        }
    }
    /// Carry `meta` in `params._meta` (the stateless revision's per-request context),
    /// merged with any `_meta` the params already have.
    pub fn with_meta(mut self, meta: Option<&'a Value>) -> Self {
        self.params.meta = meta;
        self
    }
}

/// A request's params with `_meta` entries added at serialization time, so the hot path
/// never clones the params to insert them.
#[derive(Debug, Clone, Copy)]
pub struct Params<'a> {
    pub params: Option<&'a Value>,
    pub meta: Option<&'a Value>,
}

impl Params<'_> {
    fn is_empty(&self) -> bool {
        self.params.is_none() && self.meta.is_none()
    }
}

impl Serialize for Params<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (params, meta) = match (self.params, self.meta) {
            (p, None) => return p.serialize(s),
            (Some(p), Some(_)) if !p.is_object() => return p.serialize(s),
            (p, Some(m)) => (p.and_then(Value::as_object), m),
        };
        let own_meta = params
            .and_then(|p| p.get("_meta"))
            .and_then(Value::as_object);
        let mut map = s.serialize_map(None)?;
        for (k, v) in params.into_iter().flatten() {
            if k != "_meta" {
                map.serialize_entry(k, v)?;
            }
        }
        match own_meta {
            None => map.serialize_entry("_meta", meta)?,
            Some(own) => {
                let mut merged = own.clone();
                if let Some(m) = meta.as_object() {
                    merged.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                map.serialize_entry("_meta", &merged)?;
            }
        }
        map.end()
    }
}

/// The name a request is about, for the stateless revision's `Mcp-Name` header and for
/// custom framings: a tool's or prompt's `name`, a resource's `uri`.
pub fn request_name<'a>(method: &str, params: Option<&'a Value>) -> Option<&'a str> {
    let key = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => "uri",
        _ => return None,
    };
    params?.get(key)?.as_str()
}

/// The error object of a JSON-RPC error response.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct RpcError {
    pub code: i64,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// Any message a server sends us: a response (to one of our ids), a notification, or a
/// request of its own (ping, sampling, ...). Classified by which fields are present.
#[derive(Debug, Clone, Deserialize)]
pub struct Incoming {
    #[serde(default)]
    pub jsonrpc: Option<String>,
    #[serde(default)]
    pub id: Option<Value>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub params: Option<Value>,
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub error: Option<RpcError>,
}

#[derive(Debug)]
pub enum Classified {
    /// A response to our request `id`.
    Response {
        id: u64,
        outcome: Result<Value, RpcError>,
    },
    /// The server asks us something; we must answer (ping) or refuse.
    ServerRequest {
        id: Value,
        method: String,
    },
    Notification,
    /// Valid JSON but not a JSON-RPC message we can place.
    Invalid(String),
}

impl Incoming {
    pub fn classify(self) -> Classified {
        match (self.id, self.method) {
            (Some(id), Some(method)) => Classified::ServerRequest { id, method },
            (None, Some(_)) => Classified::Notification,
            (Some(id), None) => {
                let Some(id) = id.as_u64() else {
                    return Classified::Invalid(format!("response id {id} is not one we sent"));
                };
                if self.jsonrpc.as_deref() != Some("2.0") {
                    return Classified::Invalid(format!(
                        "response {id} does not say \"jsonrpc\": \"2.0\" (found {})",
                        self.jsonrpc.map_or("nothing".into(), |v| format!("{v:?}"))
                    ));
                }
                match (self.result, self.error) {
                    (Some(_), Some(_)) => Classified::Invalid(format!(
                        "response {id} has both `result` and `error`; exactly one is allowed"
                    )),
                    (_, Some(e)) => Classified::Response {
                        id,
                        outcome: Err(e),
                    },
                    (Some(r), None) => Classified::Response { id, outcome: Ok(r) },
                    (None, None) => Classified::Invalid(format!(
                        "response {id} has neither `result` nor `error`"
                    )),
                }
            }
            (None, None) => {
                if let Some(e) = self.error {
                    // A JSON-RPC error with a null id: the server could not read our request.
                    return Classified::Invalid(format!(
                        "error without id: {} ({})",
                        e.message, e.code
                    ));
                }
                Classified::Invalid("message has neither `id` nor `method`".into())
            }
        }
    }
}

/// The answer we give to a server's own request: `{}` for ping, method-not-found otherwise
/// (we advertise no client capabilities, so sampling/elicitation/roots are refused).
pub fn answer_server_request(id: &Value, method: &str) -> Value {
    if method == "ping" {
        serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {}})
    } else {
        serde_json::json!({"jsonrpc": "2.0", "id": id,
            "error": {"code": -32601, "message": format!("mcpstorm does not support {method}")}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(s: &str) -> Classified {
        serde_json::from_str::<Incoming>(s).unwrap().classify()
    }

    #[test]
    fn classifies_every_shape() {
        assert!(matches!(
            classify(r#"{"jsonrpc":"2.0","id":3,"result":{"x":1}}"#),
            Classified::Response {
                id: 3,
                outcome: Ok(_)
            }
        ));
        assert!(matches!(
            classify(r#"{"jsonrpc":"2.0","id":4,"error":{"code":-32601,"message":"no"}}"#),
            Classified::Response {
                id: 4,
                outcome: Err(RpcError { code: -32601, .. })
            }
        ));
        assert!(matches!(
            classify(r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#),
            Classified::Notification
        ));
        assert!(matches!(
            classify(r#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#),
            Classified::ServerRequest { .. }
        ));
        assert!(matches!(
            classify(r#"{"jsonrpc":"2.0","id":5}"#),
            Classified::Invalid(_)
        ));
        assert!(matches!(
            classify(r#"{"jsonrpc":"2.0","id":"x","result":{}}"#),
            Classified::Invalid(_)
        ));
        assert!(matches!(
            classify(r#"{"jsonrpc":"2.0","id":6,"result":{},"error":{"code":1,"message":"m"}}"#),
            Classified::Invalid(d) if d.contains("both")
        ));
        assert!(matches!(
            classify(r#"{"id":7,"result":{}}"#),
            Classified::Invalid(d) if d.contains("2.0")
        ));
    }

    #[test]
    fn meta_is_merged_into_params_without_losing_either() {
        let meta = serde_json::json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"});
        let params = serde_json::json!({"name": "echo", "_meta": {"progressToken": 1}});
        let s = serde_json::to_value(
            Outgoing::request(7, "tools/call", Some(&params)).with_meta(Some(&meta)),
        )
        .unwrap();
        assert_eq!(s["params"]["name"], "echo");
        assert_eq!(s["params"]["_meta"]["progressToken"], 1);
        assert_eq!(
            s["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            "2026-07-28"
        );
        let s =
            serde_json::to_value(Outgoing::request(8, "tools/list", None).with_meta(Some(&meta)))
                .unwrap();
        assert_eq!(
            s["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            "2026-07-28"
        );
        let s = serde_json::to_string(&Outgoing::request(9, "ping", None)).unwrap();
        assert_eq!(s, r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#);
    }

    #[test]
    fn serializes_notifications_without_id() {
        let s = serde_json::to_string(&Outgoing::notification("notifications/initialized", None))
            .unwrap();
        assert_eq!(
            s,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
        );
    }
}
