//! Test tokens: JWTs minted by mcpstorm itself, valid and deliberately broken (expired, not
//! yet valid, wrong audience, bad signature, `alg: none`), from the key the user gives.
//!
//! Signed tokens come from the `jsonwebtoken` crate. An unsigned `alg: none` token is put
//! together by hand (two base64url parts and an empty signature) because the crate refuses,
//! by design, to make one; and a token signed with a key the server does not trust needs no
//! key from the user, so those two checks run without one.

use super::config::AuthKey;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The principals the probes act as (the JWT `sub`).
pub(crate) const PRINCIPAL_A: &str = "mcpstorm-probe-a";
pub(crate) const PRINCIPAL_B: &str = "mcpstorm-probe-b";

/// What to break in a token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Flaw {
    None,
    Expired,
    NotYetValid,
    WrongAudience,
    BadSignature,
}

pub(crate) struct Minter {
    key: AuthKey,
    audience: String,
    issuer: Option<String>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Claims valid for five minutes for `sub`, unless `flaw` says otherwise.
fn claims(sub: &str, audience: &str, issuer: Option<&str>, flaw: Flaw) -> Value {
    let t = now();
    let mut c = json!({
        "sub": sub,
        "aud": if flaw == Flaw::WrongAudience { "mcpstorm-wrong-audience" } else { audience },
        "iat": t,
        "exp": t + 300,
    });
    if let Some(iss) = issuer {
        c["iss"] = json!(iss);
    }
    match flaw {
        // Ten minutes: well past any clock-skew leeway a server may allow (30 s or 60 s).
        Flaw::Expired => {
            c["iat"] = json!(t - 1200);
            c["exp"] = json!(t - 600);
        }
        Flaw::NotYetValid => {
            c["nbf"] = json!(t + 600);
            c["exp"] = json!(t + 1200);
        }
        _ => {}
    }
    c
}

impl Minter {
    pub fn new(key: AuthKey, audience: &str, issuer: Option<&str>) -> Self {
        Minter {
            key,
            audience: audience.to_string(),
            issuer: issuer.map(str::to_string),
        }
    }

    /// A token for `sub` with the given flaw, and a description of it for the evidence.
    pub fn token(&self, sub: &str, flaw: Flaw) -> Result<(String, String), String> {
        let claims = claims(sub, &self.audience, self.issuer.as_deref(), flaw);
        let (alg, key) = match &self.key {
            AuthKey::Hs256 { secret, .. } => (Algorithm::HS256, EncodingKey::from_secret(secret)),
            AuthKey::Rs256 { pem, .. } => (
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(pem).map_err(|e| format!("RS256 key: {e}"))?,
            ),
        };
        let mut token = jsonwebtoken::encode(&Header::new(alg), &claims, &key)
            .map_err(|e| format!("signing a test token: {e}"))?;
        if flaw == Flaw::BadSignature {
            token = tamper_signature(&token);
        }
        let what = match flaw {
            Flaw::None => "valid",
            Flaw::Expired => "expired 10 min ago",
            Flaw::NotYetValid => "nbf 10 min ahead",
            Flaw::WrongAudience => "aud=mcpstorm-wrong-audience",
            Flaw::BadSignature => "signature altered",
        };
        Ok((
            token,
            format!(
                "<{alg:?} JWT, sub={sub}, aud={}, {what}>",
                claims["aud"].as_str().unwrap_or("")
            ),
        ))
    }
}

/// Flip bits in the middle of the signature so it no longer verifies (and stays base64url).
fn tamper_signature(token: &str) -> String {
    let Some((head, sig)) = token.rsplit_once('.') else {
        return token.to_string();
    };
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap_or_default();
    if bytes.is_empty() {
        bytes = vec![0; 32];
    }
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    format!("{head}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// An unsigned token (`alg: none`) with otherwise valid claims: a server that accepts it
/// trusts anyone who can write JSON.
pub(crate) fn alg_none(audience: &str, issuer: Option<&str>) -> (String, String) {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = claims(PRINCIPAL_A, audience, issuer, Flaw::None);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    (
        format!("{header}.{body}."),
        format!("<unsigned JWT, alg=none, sub={PRINCIPAL_A}, aud={audience}>"),
    )
}

/// A well-formed HS256 token signed with a random key the server cannot know.
pub(crate) fn foreign_key(audience: &str, issuer: Option<&str>) -> (String, String) {
    let secret: [u8; 32] = rand::random();
    let claims = claims(PRINCIPAL_A, audience, issuer, Flaw::None);
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&secret),
    )
    .unwrap_or_default();
    (
        token,
        format!("<HS256 JWT signed with a random key, sub={PRINCIPAL_A}, aud={audience}>"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode};

    fn minter() -> Minter {
        Minter::new(
            AuthKey::Hs256 {
                secret: b"s3cret-for-tests".to_vec(),
                env: "X".into(),
            },
            "mcpstorm",
            None,
        )
    }

    fn verify(token: &str) -> Result<Value, String> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_audience(&["mcpstorm"]);
        v.leeway = 30;
        v.validate_nbf = true;
        decode::<Value>(token, &DecodingKey::from_secret(b"s3cret-for-tests"), &v)
            .map(|d| d.claims)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_valid_token_verifies_and_each_flaw_breaks_it() {
        let m = minter();
        let (good, what) = m.token(PRINCIPAL_A, Flaw::None).unwrap();
        assert_eq!(verify(&good).unwrap()["sub"], PRINCIPAL_A);
        assert!(
            !what.contains(&good),
            "the description must not carry the token"
        );
        for flaw in [
            Flaw::Expired,
            Flaw::NotYetValid,
            Flaw::WrongAudience,
            Flaw::BadSignature,
        ] {
            let (t, _) = m.token(PRINCIPAL_A, flaw).unwrap();
            assert!(verify(&t).is_err(), "{flaw:?} verified");
        }
        assert!(verify(&foreign_key("mcpstorm", None).0).is_err());
    }

    #[test]
    fn alg_none_is_unsigned_with_valid_claims() {
        let (t, _) = alg_none("mcpstorm", Some("iss-x"));
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(parts[2].is_empty());
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "none");
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], "mcpstorm");
        assert_eq!(claims["iss"], "iss-x");
        assert!(claims["exp"].as_i64().unwrap() > now());
    }
}
