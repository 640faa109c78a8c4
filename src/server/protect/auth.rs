//! Bearer auth with JWTs (HS256 or RS256): every request to `/mcp` must carry
//! `Authorization: Bearer <token>` whose signature, algorithm, `aud`, `exp`, `nbf` (and `iss`
//! when configured) check out; its `sub` becomes the request's [`Principal`].
//!
//! A refusal is 401 with `WWW-Authenticate: Bearer realm="mcpstorm"` and, for a token that
//! was given but is bad, `error="invalid_token"` and a description of what is wrong
//! (RFC 6750). Only the configured algorithm is accepted, so `alg: none` and the
//! RS256-key-as-HMAC-secret trick are refused by construction.
//!
//! It must never log or echo a token or the key.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::reject::Rejection;

/// Clock skew tolerated on `exp` and `nbf`, in seconds. The contract allows at most 30.
const LEEWAY_S: u64 = 5;
/// The default required `aud`.
pub const DEFAULT_AUDIENCE: &str = "mcpstorm";
const REALM: &str = "mcpstorm";

/// Where the verification key comes from.
pub enum AuthKey {
    Hs256Secret(Vec<u8>),
    Rs256PublicPem(Vec<u8>),
}

/// A ready-to-use token verifier. Cloning shares it.
#[derive(Clone)]
pub struct AuthConfig {
    verifier: Arc<Verifier>,
}

struct Verifier {
    key: DecodingKey,
    validation: Validation,
    algorithm: Algorithm,
    audience: String,
    issuer: Option<String>,
}

impl std::fmt::Debug for AuthConfig {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("algorithm", &self.verifier.algorithm)
            .field("audience", &self.verifier.audience)
            .field("issuer", &self.verifier.issuer)
            .finish()
    }
}

/// Who made a request: the `sub` of its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal(pub Arc<str>);

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenProblem {
    Missing,
    Malformed,
    BadSignature,
    WrongAlgorithm,
    Expired,
    NotYetValid,
    WrongAudience,
    WrongIssuer,
    MissingClaim(String),
}

impl TokenProblem {
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            TokenProblem::Missing => "missing_token",
            TokenProblem::Malformed => "malformed_token",
            TokenProblem::BadSignature => "bad_signature",
            TokenProblem::WrongAlgorithm => "wrong_algorithm",
            TokenProblem::Expired => "expired_token",
            TokenProblem::NotYetValid => "token_not_yet_valid",
            TokenProblem::WrongAudience => "wrong_audience",
            TokenProblem::WrongIssuer => "wrong_issuer",
            TokenProblem::MissingClaim(_) => "missing_claim",
        }
    }

    fn describe(&self, v: &Verifier) -> String {
        match self {
            TokenProblem::Missing => "no bearer token: send `Authorization: Bearer <JWT>`".into(),
            TokenProblem::Malformed => "the bearer token is not a well-formed JWT".into(),
            TokenProblem::BadSignature => "the token's signature does not verify".into(),
            TokenProblem::WrongAlgorithm => {
                format!("the token is not signed with {:?}", v.algorithm)
            }
            TokenProblem::Expired => "the token has expired".into(),
            TokenProblem::NotYetValid => "the token is not valid yet (nbf)".into(),
            TokenProblem::WrongAudience => {
                format!("the token's audience (aud) is not `{}`", v.audience)
            }
            TokenProblem::WrongIssuer => match &v.issuer {
                Some(i) => format!("the token's issuer (iss) is not `{i}`"),
                None => "the token's issuer (iss) is not accepted".into(),
            },
            TokenProblem::MissingClaim(c) => format!("the token has no `{c}` claim"),
        }
    }
}

#[derive(serde::Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
}

impl AuthConfig {
    /// Builds a verifier; `Err` says what is wrong with the key, for the flag's message.
    pub fn new(key: AuthKey, audience: String, issuer: Option<String>) -> Result<Self, String> {
        let (key, algorithm) = match key {
            AuthKey::Hs256Secret(secret) => {
                if secret.is_empty() {
                    return Err("the HS256 secret is empty".into());
                }
                (DecodingKey::from_secret(&secret), Algorithm::HS256)
            }
            AuthKey::Rs256PublicPem(pem) => (
                DecodingKey::from_rsa_pem(&pem)
                    .map_err(|e| format!("not an RSA public key in PEM format ({e})"))?,
                Algorithm::RS256,
            ),
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_S;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_audience(&[audience.as_str()]);
        let mut required = vec!["exp", "aud", "sub"];
        if let Some(iss) = &issuer {
            validation.set_issuer(&[iss.as_str()]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(AuthConfig {
            verifier: Arc::new(Verifier {
                key,
                validation,
                algorithm,
                audience,
                issuer,
            }),
        })
    }

    pub(crate) fn verify(&self, token: &str) -> Result<Principal, TokenProblem> {
        let v = &self.verifier;
        let data =
            jsonwebtoken::decode::<Claims>(token, &v.key, &v.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::InvalidSignature => TokenProblem::BadSignature,
                    ErrorKind::InvalidAlgorithm
                    | ErrorKind::InvalidAlgorithmName
                    | ErrorKind::MissingAlgorithm
                    | ErrorKind::UnsupportedAlgorithm => TokenProblem::WrongAlgorithm,
                    ErrorKind::ExpiredSignature => TokenProblem::Expired,
                    ErrorKind::ImmatureSignature => TokenProblem::NotYetValid,
                    ErrorKind::InvalidAudience => TokenProblem::WrongAudience,
                    ErrorKind::InvalidIssuer => TokenProblem::WrongIssuer,
                    ErrorKind::MissingRequiredClaim(c) => TokenProblem::MissingClaim(c.clone()),
                    _ => TokenProblem::Malformed,
                }
            })?;
        match data.claims.sub {
            Some(sub) if !sub.is_empty() => Ok(Principal(sub.into())),
            _ => Err(TokenProblem::MissingClaim("sub".into())),
        }
    }

    /// The 401 for `problem`.
    pub(crate) fn rejection(&self, problem: &TokenProblem) -> Rejection {
        let description = problem.describe(&self.verifier);
        let challenge = match problem {
            // RFC 6750 3.1: no error code when the request had no credentials.
            TokenProblem::Missing => format!("Bearer realm=\"{REALM}\""),
            _ => format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{description}\""
            ),
        };
        Rejection::new(
            StatusCode::UNAUTHORIZED,
            "denied",
            problem.reason(),
            format!("unauthorized: {description}"),
        )
        .www_authenticate(challenge)
    }
}

/// The token of an `Authorization: Bearer ...` header, if there is one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl AuthConfig {
    /// The principal of a request with a good bearer token, or its 401.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Box<Rejection>> {
        let verdict = match bearer(headers) {
            None => Err(TokenProblem::Missing),
            Some(token) => self.verify(token),
        };
        verdict.map_err(|problem| Box::new(self.rejection(&problem)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
    use serde_json::json;

    const SECRET: &[u8] = b"test-secret-of-reasonable-length";

    fn config() -> AuthConfig {
        AuthConfig::new(
            AuthKey::Hs256Secret(SECRET.to_vec()),
            "mcpstorm".into(),
            Some("issuer-1".into()),
        )
        .unwrap()
    }

    fn token(claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn good_claims() -> serde_json::Value {
        let now = get_current_timestamp();
        json!({ "sub": "alice", "aud": "mcpstorm", "iss": "issuer-1", "exp": now + 60, "nbf": now - 1 })
    }

    #[test]
    fn a_good_token_names_its_principal() {
        let p = config().verify(&token(good_claims())).unwrap();
        assert_eq!(&*p.0, "alice");
    }

    #[test]
    fn every_kind_of_bad_token_is_refused_for_its_own_reason() {
        let now = get_current_timestamp();
        let c = config();
        let with = |key: &str, value: serde_json::Value| {
            let mut claims = good_claims();
            claims[key] = value;
            token(claims)
        };
        let without = |key: &str| {
            let mut claims = good_claims();
            claims.as_object_mut().unwrap().remove(key);
            token(claims)
        };
        assert_eq!(
            c.verify(&with("exp", json!(now - 31))),
            Err(TokenProblem::Expired)
        );
        assert_eq!(
            c.verify(&with("nbf", json!(now + 600))),
            Err(TokenProblem::NotYetValid)
        );
        assert_eq!(
            c.verify(&with("aud", json!("someone-else"))),
            Err(TokenProblem::WrongAudience)
        );
        assert_eq!(
            c.verify(&with("iss", json!("issuer-2"))),
            Err(TokenProblem::WrongIssuer)
        );
        assert_eq!(
            c.verify(&without("sub")),
            Err(TokenProblem::MissingClaim("sub".into()))
        );
        assert_eq!(
            c.verify(&without("exp")),
            Err(TokenProblem::MissingClaim("exp".into()))
        );
        assert_eq!(c.verify("not-a-jwt"), Err(TokenProblem::Malformed));

        let forged = encode(
            &Header::new(Algorithm::HS256),
            &good_claims(),
            &EncodingKey::from_secret(b"another-secret"),
        )
        .unwrap();
        assert_eq!(c.verify(&forged), Err(TokenProblem::BadSignature));

        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &good_claims(),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(c.verify(&hs512), Err(TokenProblem::WrongAlgorithm));
    }

    #[test]
    fn alg_none_is_refused() {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let unsigned = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(good_claims().to_string().as_bytes())
        );
        assert!(config().verify(&unsigned).is_err());
    }

    #[test]
    fn challenges_follow_rfc_6750() {
        let c = config();
        let missing = c.rejection(&TokenProblem::Missing);
        assert_eq!(
            missing.www_authenticate.as_deref(),
            Some("Bearer realm=\"mcpstorm\"")
        );
        let expired = c.rejection(&TokenProblem::Expired);
        let w = expired.www_authenticate.unwrap();
        assert!(
            w.starts_with("Bearer realm=\"mcpstorm\", error=\"invalid_token\""),
            "{w}"
        );
        assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
        assert_eq!(expired.reason, "expired_token");
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_other_schemes_are_missing() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn a_bad_rsa_key_is_a_clear_error() {
        let e = AuthConfig::new(
            AuthKey::Rs256PublicPem(b"not a pem".to_vec()),
            "mcpstorm".into(),
            None,
        )
        .unwrap_err();
        assert!(e.contains("PEM"), "{e}");
    }
}
