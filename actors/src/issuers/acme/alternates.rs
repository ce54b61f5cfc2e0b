//! Alternate chains (RFC 8555 §7.4.2): a CA may offer the same leaf under other chains (another
//! root, a cross-signed intermediate) as `Link: <url>;rel="alternate"` on the certificate
//! download. With `preferred_chain` set, certctl takes the first chain whose topmost certificate
//! was issued by that common name, as certbot's and lego's `--preferred-chain` do, and keeps the
//! CA's default chain when none matches.
//!
//! The transport notes the alternates of every certificate download ([`Alternates`]);
//! fetching one is a POST-as-GET signed with the account key (§6.3), done here because
//! instant-acme downloads only the default chain and exposes no signed request of its own.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::issuers::http::CaHttp;
use crate::issuers::{ErrorClass, IssueFailure};

/// The alternate chain URLs of the certificate downloads seen, by certificate URL.
#[derive(Default)]
pub struct Alternates {
    by_certificate: Mutex<HashMap<String, Vec<String>>>,
}

impl Alternates {
    /// Notes the `rel="alternate"` links of a certificate download of `url`.
    pub fn record(&self, url: &reqwest::Url, headers: &http::HeaderMap) {
        let links: Vec<String> = headers
            .get_all(http::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(alternate_target)
            .filter_map(|target| url.join(&target).ok().map(String::from))
            .collect();
        let mut map = self.by_certificate.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Only the last few downloads matter: the one being completed is read right after.
        if map.len() > 256 {
            map.clear();
        }
        map.insert(url.to_string(), links);
    }

    /// Takes the alternates noted for the certificate at `url`.
    pub fn take(&self, url: &str) -> Vec<String> {
        self.by_certificate.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(url).unwrap_or_default()
    }
}

/// The target of one `Link` value when its relation is `alternate`.
fn alternate_target(link: &str) -> Option<String> {
    let (target, params) = link.trim().split_once('>')?;
    let target = target.trim().strip_prefix('<')?;
    let alternate = params.split(';').any(|p| {
        let p = p.trim();
        p.strip_prefix("rel=").is_some_and(|rel| rel.trim_matches('"').split(' ').any(|r| r == "alternate"))
    });
    alternate.then(|| target.to_owned())
}

/// Whether the topmost certificate of `chain_pem` was issued by `issuer_cn`.
pub fn top_issued_by(chain_pem: &str, issuer_cn: &str) -> bool {
    let blocks: Vec<_> = x509_parser::pem::Pem::iter_from_buffer(chain_pem.as_bytes()).filter_map(Result::ok).collect();
    let Some(top) = blocks.last() else { return false };
    let Ok(cert) = top.parse_x509() else { return false };
    let found = cert.issuer().iter_common_name().filter_map(|cn| cn.as_str().ok()).any(|cn| cn == issuer_cn);
    found
}

/// An ACME account's key and URL, for the requests certctl signs itself.
pub struct AccountSigner {
    pub account_url: String,
    key: EcdsaKeyPair,
}

impl AccountSigner {
    /// From the account credentials as stored (instant-acme's JSON: `key_pkcs8` base64url).
    pub fn from_credentials(credentials: &Value, account_url: &str) -> Result<AccountSigner, String> {
        let pkcs8 = credentials["key_pkcs8"].as_str().ok_or("the stored account has no key_pkcs8")?;
        let der = URL_SAFE_NO_PAD.decode(pkcs8.trim_end_matches('=')).map_err(|_| "key_pkcs8 is not base64url")?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .map_err(|e| format!("the account key is not an ECDSA P-256 key: {e}"))?;
        Ok(AccountSigner { account_url: account_url.to_owned(), key })
    }

    /// A POST-as-GET body for `url` (RFC 8555 §6.3): empty payload, the account's `kid`.
    fn post_as_get(&self, url: &str, nonce: &str) -> Result<Value, IssueFailure> {
        let protected = json!({"alg": "ES256", "kid": self.account_url, "nonce": nonce, "url": url});
        let protected = URL_SAFE_NO_PAD.encode(protected.to_string());
        let signature = self
            .key
            .sign(&SystemRandom::new(), format!("{protected}.").as_bytes())
            .map_err(|_| IssueFailure::new(ErrorClass::Internal, "signing an ACME request failed"))?;
        Ok(json!({"protected": protected, "payload": "", "signature": URL_SAFE_NO_PAD.encode(signature.as_ref())}))
    }
}

/// A fresh nonce from the directory's `newNonce`.
async fn nonce(http: &CaHttp, directory_url: &str) -> Result<String, IssueFailure> {
    let directory: Value = http.json("acme", http.client().get(directory_url)).await?;
    let new_nonce = directory["newNonce"]
        .as_str()
        .ok_or_else(|| IssueFailure::new(ErrorClass::Upstream5xx, "the ACME directory has no newNonce"))?;
    let response = http.send("acme", http.client().head(new_nonce)).await?;
    replay_nonce(response.headers())
        .ok_or_else(|| IssueFailure::new(ErrorClass::Upstream5xx, "the ACME server answered no Replay-Nonce"))
}

fn replay_nonce(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers.get("replay-nonce").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Downloads the chain at `url` (an alternate of a certificate), PEM. A `badNonce` is retried
/// once with the nonce it came with.
pub async fn fetch(
    http: &CaHttp,
    directory_url: &str,
    signer: &AccountSigner,
    url: &str,
) -> Result<String, IssueFailure> {
    let mut nonce = nonce(http, directory_url).await?;
    for _ in 0..2 {
        let body = signer.post_as_get(url, &nonce)?;
        let request = http
            .client()
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/jose+json")
            .header(reqwest::header::ACCEPT, "application/pem-certificate-chain")
            .body(body.to_string())
            .build()
            .map_err(|e| crate::issuers::http::transport_failure("acme", &e))?;
        let response = http.exchange("acme", request).await?;
        let fresh = replay_nonce(response.headers());
        if response.status().is_success() {
            return response.text().await.map_err(|e| crate::issuers::http::transport_failure("acme", &e));
        }
        let failure = crate::issuers::http::answer_failure("acme", response).await;
        match fresh {
            Some(fresh) if failure.message.contains("badNonce") => nonce = fresh,
            _ => return Err(failure),
        }
    }
    Err(IssueFailure::new(ErrorClass::Upstream5xx, "the ACME server refused two fresh nonces"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_alternate_links_are_kept_and_made_absolute() {
        let mut headers = http::HeaderMap::new();
        headers.append(http::header::LINK, "<https://ca.test/dir>;rel=\"index\"".parse().unwrap());
        headers.append(
            http::header::LINK,
            "</cert/1/alt/1>;rel=\"alternate\", <https://x.test/2>; rel=alternate".parse().unwrap(),
        );
        let alternates = Alternates::default();
        let url = reqwest::Url::parse("https://ca.test/cert/1").unwrap();
        alternates.record(&url, &headers);
        assert_eq!(alternates.take("https://ca.test/cert/1"), vec!["https://ca.test/cert/1/alt/1", "https://x.test/2"]);
        assert!(alternates.take("https://ca.test/cert/1").is_empty(), "taken once");
    }
}
