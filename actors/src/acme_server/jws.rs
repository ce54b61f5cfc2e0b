//! ACME request bodies (RFC 8555 §6.2): a JWS in the flattened JSON serialization, exactly one
//! signature, no unprotected header, whose protected header carries `alg`, `nonce`, `url` and
//! exactly one of `jwk` (new-account, revocation by the certificate's key) or `kid` (the account
//! URL). Parsing checks the shape; the caller checks the nonce and the URL, finds the key (from
//! `jwk`, or the account named by `kid`) and calls [`Jws::verify`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::account_key::AccountKey;
use super::problem::AcmeProblem;

/// Who signed a request.
#[derive(Clone, Debug, PartialEq)]
pub enum Signer {
    /// A key given in the request (`jwk`).
    Key(AccountKey),
    /// An account, by URL (`kid`).
    Account(String),
}

/// A parsed ACME JWS, not yet verified.
#[derive(Clone, Debug)]
pub struct Jws {
    /// The protected header's algorithm.
    pub alg: String,
    /// `nonce` ([`Jws::parse`] refuses a JWS without one).
    pub nonce: Option<String>,
    /// `url`.
    pub url: Option<String>,
    pub signer: Signer,
    /// The decoded payload; empty for POST-as-GET.
    pub payload: Vec<u8>,
    /// Whether the payload was the empty string (POST-as-GET, RFC 8555 §6.3).
    pub post_as_get: bool,
    /// `protected.payload`, what the signature covers.
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

fn text<'a>(object: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, AcmeProblem> {
    match object.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(AcmeProblem::malformed(format!("\"{name}\" must be a string"))),
    }
}

fn decode(part: &str, what: &str) -> Result<Vec<u8>, AcmeProblem> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| AcmeProblem::malformed(format!("the JWS {what} is not base64url")))
}

impl Jws {
    /// Reads a request body.
    pub fn parse(body: &[u8]) -> Result<Jws, AcmeProblem> {
        let jws = Jws::parse_value(body)?;
        if jws.nonce.is_none() {
            return Err(AcmeProblem::new(
                super::problem::AcmeErrorType::BadNonce,
                "the JWS protected header has no \"nonce\"",
            ));
        }
        if jws.url.is_none() {
            return Err(AcmeProblem::malformed("the JWS protected header has no \"url\""));
        }
        Ok(jws)
    }

    fn parse_value(body: &[u8]) -> Result<Jws, AcmeProblem> {
        let value: Value = serde_json::from_slice(body).map_err(|_| AcmeProblem::malformed("the body is not JSON"))?;
        let Value::Object(object) = value else {
            return Err(AcmeProblem::malformed("the body is not a JWS in the flattened JSON serialization"));
        };
        if object.contains_key("signatures") || object.contains_key("header") {
            return Err(AcmeProblem::malformed(
                "only the flattened JSON serialization with a protected header alone is accepted",
            ));
        }
        let protected_b64 = text(&object, "protected")?.ok_or_else(|| AcmeProblem::malformed("no \"protected\""))?;
        let payload_b64 = text(&object, "payload")?.ok_or_else(|| AcmeProblem::malformed("no \"payload\""))?;
        let signature_b64 = text(&object, "signature")?.ok_or_else(|| AcmeProblem::malformed("no \"signature\""))?;
        let signature = decode(signature_b64, "signature")?;
        if signature.is_empty() {
            return Err(AcmeProblem::malformed("the JWS signature is empty"));
        }
        let header: Value = serde_json::from_slice(&decode(protected_b64, "protected header")?)
            .map_err(|_| AcmeProblem::malformed("the JWS protected header is not JSON"))?;
        let Value::Object(header) = header else {
            return Err(AcmeProblem::malformed("the JWS protected header is not a JSON object"));
        };
        if header.contains_key("b64") || header.contains_key("crit") {
            return Err(AcmeProblem::malformed("\"b64\" and \"crit\" are not accepted in ACME requests"));
        }
        let alg = text(&header, "alg")?.ok_or_else(|| AcmeProblem::malformed("the JWS has no \"alg\""))?.to_owned();
        let signer = match (header.get("jwk"), text(&header, "kid")?) {
            (Some(jwk), None) => Signer::Key(AccountKey::from_jwk(jwk)?),
            (None, Some(kid)) => Signer::Account(kid.to_owned()),
            (Some(_), Some(_)) => return Err(AcmeProblem::malformed("the JWS carries both \"jwk\" and \"kid\"")),
            (None, None) => return Err(AcmeProblem::malformed("the JWS carries neither \"jwk\" nor \"kid\"")),
        };
        Ok(Jws {
            alg,
            nonce: text(&header, "nonce")?.map(str::to_owned),
            url: text(&header, "url")?.map(str::to_owned),
            signer,
            payload: decode(payload_b64, "payload")?,
            post_as_get: payload_b64.is_empty(),
            signing_input: format!("{protected_b64}.{payload_b64}").into_bytes(),
            signature,
        })
    }

    /// Checks the signature with `key` (the `jwk`, or the account's stored key).
    pub fn verify(&self, key: &AccountKey) -> Result<(), AcmeProblem> {
        key.verify(&self.alg, &self.signing_input, &self.signature)
    }

    /// The payload as a JSON object; `{}` for POST-as-GET is not implied (callers that accept
    /// POST-as-GET check [`Jws::post_as_get`] first).
    pub fn payload_json(&self) -> Result<Value, AcmeProblem> {
        serde_json::from_slice(&self.payload).map_err(|_| AcmeProblem::malformed("the JWS payload is not JSON"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme_server::problem::AcmeErrorType;

    /// Requests signed by another JOSE implementation (Python jwcrypto), one per algorithm.
    fn vectors() -> Value {
        serde_json::from_str(include_str!("testdata/jws_vectors.json")).unwrap()
    }

    #[test]
    fn requests_signed_elsewhere_verify_with_every_algorithm() {
        for (alg, vector) in vectors().as_object().unwrap() {
            let body = serde_json::to_vec(&vector["jws"]).unwrap();
            let jws = Jws::parse(&body).unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(&jws.alg, alg);
            assert_eq!(jws.nonce.as_deref(), Some("test-nonce"));
            let Signer::Key(key) = &jws.signer else { panic!("{alg}: a jwk") };
            jws.verify(key).unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(
                key.thumbprint(),
                vector["thumbprint"].as_str().unwrap(),
                "{alg}: RFC 7638 as jwcrypto computes it"
            );
            assert_eq!(jws.payload_json().unwrap()["termsOfServiceAgreed"], true);
        }
    }

    #[test]
    fn tampering_and_bad_shapes_are_refused_with_their_types() {
        let vector = &vectors()["ES256"]["jws"];
        let mut tampered = vector.clone();
        tampered["payload"] = Value::String(URL_SAFE_NO_PAD.encode(br#"{"termsOfServiceAgreed":false}"#));
        let jws = Jws::parse(&serde_json::to_vec(&tampered).unwrap()).unwrap();
        let Signer::Key(key) = &jws.signer else { unreachable!() };
        assert!(jws.verify(key).unwrap_err().detail.contains("does not verify"));

        let mut general = serde_json::Map::new();
        general.insert("payload".into(), vector["payload"].clone());
        general.insert("signatures".into(), Value::Array(vec![]));
        let problem = Jws::parse(&serde_json::to_vec(&general).unwrap()).unwrap_err();
        assert_eq!(problem.kind, AcmeErrorType::Malformed);

        // Another algorithm named than the key signs with.
        let rsa = &vectors()["RS256"]["jws"];
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(rsa["protected"].as_str().unwrap()).unwrap()).unwrap();
        let mut renamed = header.clone();
        renamed["alg"] = "HS256".into();
        let mut forged = rsa.clone();
        forged["protected"] = Value::String(URL_SAFE_NO_PAD.encode(renamed.to_string()));
        let jws = Jws::parse(&serde_json::to_vec(&forged).unwrap()).unwrap();
        let Signer::Key(key) = &jws.signer else { unreachable!() };
        let problem = jws.verify(key).unwrap_err();
        assert_eq!(problem.kind, AcmeErrorType::BadSignatureAlgorithm);
        assert_eq!(problem.algorithms.unwrap(), crate::acme_server::account_key::ALGORITHMS);

        let mut no_nonce = header.clone();
        no_nonce.as_object_mut().unwrap().remove("nonce");
        let mut stale = rsa.clone();
        stale["protected"] = Value::String(URL_SAFE_NO_PAD.encode(no_nonce.to_string()));
        assert_eq!(Jws::parse(&serde_json::to_vec(&stale).unwrap()).unwrap_err().kind, AcmeErrorType::BadNonce);

        let mut both = header;
        both["kid"] = "https://acme.test/acct/1".into();
        let mut doubled = rsa.clone();
        doubled["protected"] = Value::String(URL_SAFE_NO_PAD.encode(both.to_string()));
        assert!(Jws::parse(&serde_json::to_vec(&doubled).unwrap()).unwrap_err().detail.contains("both"));
    }
}
