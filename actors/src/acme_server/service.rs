//! The ACME server's flows, one call per endpoint: the directory, nonces, authenticating a
//! signed request (shape, URL, nonce, key), and accounts (new-account, account updates and
//! deactivation). The shell decodes the HTTP request into a [`SignedRequest`], makes one call,
//! and writes the typed outcome or the [`AcmeProblem`] with a fresh nonce.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::account_key::AccountKey;
use super::jws::{Jws, Signer};
use super::nonce::Nonces;
use super::problem::{AcmeErrorType, AcmeProblem};
use crate::crypto::seal::SealingKey;
use crate::db::Db;
use crate::queries::acme_server::{
    AccountById, AccountByKey, AcmeProfile, CreateAccount, RedeemNonce, ServerAccount, UpdateAccount, VersionsBySerial,
};

/// The ACME server's settings (`CERTCTL_ACME_SERVER_*`).
#[derive(Clone, Debug, Default)]
pub struct AcmeServerSettings {
    /// Whether `/acme/…` is served at all.
    pub enabled: bool,
    /// The profile `/acme/…` (without `/profile/{id}`) stands for.
    pub default_profile_id: Option<String>,
    /// How long a nonce is accepted.
    pub nonce_ttl: Duration,
    /// Directory `meta`.
    pub terms_of_service: Option<String>,
    pub website: Option<String>,
    pub caa_identities: Vec<String>,
    /// Whether renewal information (RFC 9773) is served.
    pub ari_enabled: bool,
    /// The `Retry-After` of renewal information.
    pub ari_poll_interval: Duration,
}

/// How long a profile's existence and state are taken from the cache: a profile disabled or
/// deleted through the API stops answering ACME within this.
const PROFILE_CACHE_TTL: Duration = Duration::from_secs(5);
/// Profiles the cache holds at most.
const PROFILE_CACHE_MAX: usize = 1_024;

/// The ACME server. Cheap to clone.
#[derive(Clone)]
pub struct AcmeServer {
    db: Db,
    nonces: Nonces,
    settings: Arc<AcmeServerSettings>,
    /// Profiles seen lately: whether each exists (and is enabled), and when that was read.
    profiles: Arc<std::sync::Mutex<ProfileCache>>,
}

/// Profile id → (whether it exists and is enabled, when that was read).
type ProfileCache = std::collections::HashMap<String, (Option<bool>, std::time::Instant)>;

/// Which profile's ACME directory a request is for, and its URL root
/// (`https://host/acme/profile/{id}` or `https://host/acme`).
#[derive(Clone, Debug)]
pub struct Directory {
    pub profile_id: String,
    pub base_url: String,
}

impl Directory {
    /// The URL of a resource under the directory (`new-nonce`, `account/acct-…`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base_url)
    }

    /// The URL of an account.
    pub fn account_url(&self, id: &str) -> String {
        self.url(&format!("account/{id}"))
    }
}

/// Which directory a request was sent to, as the shell reads it from the URL: the profile in the
/// path (`None` for the `/acme/…` shorthand) and the URL root of that directory.
#[derive(Clone, Debug)]
pub struct Addressed {
    pub profile_id: Option<String>,
    /// `https://host/acme/profile/{id}` or `https://host/acme`.
    pub base_url: String,
}

impl Addressed {
    /// The directory's URL (the `Link: rel="index"` of every answer under it).
    pub fn index_url(&self) -> String {
        format!("{}/directory", self.base_url)
    }
}

/// A POST as the shell received it.
#[derive(Clone, Debug)]
pub struct SignedRequest {
    pub at: Addressed,
    /// The URL the request was sent to, as the client must have put it in the JWS.
    pub url: String,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// A request whose signature, URL and nonce checked out.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub jws: Jws,
    /// The signing account, for `kid` requests.
    pub account: Option<ServerAccount>,
    /// The key that signed it.
    pub key: AccountKey,
}

/// An account as the ACME client sees it, with its URL.
#[derive(Clone, Debug)]
pub struct AccountView {
    pub url: String,
    pub body: Value,
}

/// A certificate's suggested renewal window (RFC 9773 §4.2).
#[derive(Clone, Debug)]
pub struct RenewalInfo {
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
    /// When to ask again (`Retry-After`).
    pub retry_after: Duration,
}

/// What new-account did.
#[derive(Clone, Debug)]
pub enum NewAccount {
    /// 201: made now.
    Created(AccountView),
    /// 200: the key's account already existed.
    Existing(AccountView),
}

fn server_error(what: &str, e: impl std::fmt::Display) -> AcmeProblem {
    tracing::error!(error = %e, "{what}");
    AcmeProblem::new(AcmeErrorType::ServerInternal, format!("{what}; try again later"))
}

impl AcmeServer {
    pub fn new(db: Db, sealing: Arc<SealingKey>, settings: AcmeServerSettings) -> AcmeServer {
        let nonces = Nonces::new(sealing, settings.nonce_ttl);
        AcmeServer { db, nonces, settings: Arc::new(settings), profiles: Arc::default() }
    }

    /// Whether a profile exists (`None`: no) and is enabled, from a cache kept a few seconds so
    /// that the directory and new-nonce, the hottest routes, do not read the database each time.
    async fn profile_enabled(&self, id: &str) -> Result<Option<bool>, crate::error::DbError> {
        let now = std::time::Instant::now();
        if let Some((known, at)) = self.profiles.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(id) {
            if now.duration_since(*at) < PROFILE_CACHE_TTL {
                return Ok(*known);
            }
        }
        let known = self.db.run(AcmeProfile { id: id.to_owned() }).await?;
        let mut cache = self.profiles.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bounded: ids that do not exist are cached too, so a scan of made-up ids cannot grow it.
        if cache.len() >= PROFILE_CACHE_MAX {
            cache.clear();
        }
        cache.insert(id.to_owned(), (known, now));
        Ok(known)
    }

    /// A fresh nonce (no database).
    pub fn new_nonce(&self) -> String {
        self.nonces.issue()
    }

    /// The directory a request addresses: `profile_id` from the path, or the default profile for
    /// the shorthand routes. The server must be on and the profile exist and be enabled.
    async fn resolve(&self, at: &Addressed) -> Result<Directory, AcmeProblem> {
        if !self.settings.enabled {
            return Err(
                AcmeProblem::malformed("the ACME server is not enabled (CERTCTL_ACME_SERVER_ENABLED)").with_status(404)
            );
        }
        let base_url = at.base_url.clone();
        let default = self.settings.default_profile_id.clone().filter(|id| !id.is_empty());
        let profile_id = match at.profile_id.clone().or(default) {
            Some(id) => id,
            None => {
                return Err(AcmeProblem::new(
                    AcmeErrorType::UserActionRequired,
                    "this server has no default ACME profile (CERTCTL_ACME_SERVER_DEFAULT_PROFILE_ID); use \
                     /acme/profile/{profile_id}/directory",
                ))
            }
        };
        match self.profile_enabled(&profile_id).await {
            Ok(Some(true)) => Ok(Directory { profile_id, base_url }),
            Ok(Some(false)) => {
                Err(AcmeProblem::malformed(format!("profile {profile_id} is disabled")).with_status(404))
            }
            Ok(None) => Err(AcmeProblem::malformed(format!("there is no profile {profile_id}")).with_status(404)),
            Err(e) => Err(server_error("reading the profile failed", e).with_status(503)),
        }
    }

    /// The directory document (RFC 8555 §7.1.1) of the directory a request addresses.
    pub async fn directory(&self, at: &Addressed) -> Result<Value, AcmeProblem> {
        let directory = self.resolve(at).await?;
        Ok(self.directory_document(&directory))
    }

    /// new-nonce (RFC 8555 §7.2): checks the directory exists; the nonce itself goes on every
    /// answer ([`AcmeServer::new_nonce`]).
    pub async fn nonce_for(&self, at: &Addressed) -> Result<(), AcmeProblem> {
        self.resolve(at).await.map(|_| ())
    }

    fn directory_document(&self, directory: &Directory) -> Value {
        let mut meta = serde_json::Map::new();
        if let Some(tos) = &self.settings.terms_of_service {
            meta.insert("termsOfService".into(), json!(tos));
        }
        if let Some(website) = &self.settings.website {
            meta.insert("website".into(), json!(website));
        }
        if !self.settings.caa_identities.is_empty() {
            meta.insert("caaIdentities".into(), json!(self.settings.caa_identities));
        }
        meta.insert("externalAccountRequired".into(), json!(false));
        let mut document = json!({
            "newNonce": directory.url("new-nonce"),
            "newAccount": directory.url("new-account"),
            "newOrder": directory.url("new-order"),
            "revokeCert": directory.url("revoke-cert"),
            "keyChange": directory.url("key-change"),
            "meta": meta,
        });
        if self.settings.ari_enabled {
            document["renewalInfo"] = json!(directory.url("renewal-info"));
        }
        document
    }

    /// renewalInfo (RFC 9773): the suggested window of a certificate certctl holds, found by
    /// serial and told apart by its issuer's key identifier. Unauthenticated.
    pub async fn renewal_info(&self, at: &Addressed, cert_id: &str) -> Result<RenewalInfo, AcmeProblem> {
        self.resolve(at).await?;
        if !self.settings.ari_enabled {
            return Err(
                AcmeProblem::malformed("renewal information is off (CERTCTL_ACME_SERVER_ARI_ENABLED)").with_status(404)
            );
        }
        let id = super::ari::CertId::parse(cert_id)?;
        let candidates = self
            .db
            .run(VersionsBySerial { serial: id.serial.clone() })
            .await
            .map_err(|e| server_error("looking the certificate up failed", e).with_status(503))?;
        let found = candidates.into_iter().find(|c| issued_under(&c.pem_chain, &id.key_identifier));
        let Some(found) = found else {
            return Err(AcmeProblem::malformed(format!("no certificate {cert_id} is known here")).with_status(404));
        };
        let known = super::ari::Known {
            not_before: found.not_before,
            not_after: found.not_after,
            planned: found.planned,
            renew_now: found.renew_now,
        };
        let (start, end) = super::ari::window(&known, chrono::Utc::now());
        Ok(RenewalInfo { start, end, retry_after: self.settings.ari_poll_interval })
    }

    /// Checks a signed request: the content type, the JWS shape, the URL it was signed for, the
    /// nonce (once), and the signature with the `jwk` (`key_allowed`: new-account) or with the
    /// key of the valid account named by `kid`.
    async fn authenticate(
        &self,
        directory: &Directory,
        request: &SignedRequest,
        key_allowed: bool,
    ) -> Result<Authenticated, AcmeProblem> {
        let content_type = request.content_type.as_deref().unwrap_or("");
        let essence = content_type.split(';').next().map(|t| t.trim().to_ascii_lowercase());
        if essence.as_deref() != Some("application/jose+json") {
            return Err(AcmeProblem::malformed(format!(
                "the request's Content-Type is {content_type:?}; ACME requests are application/jose+json"
            ))
            .with_status(415));
        }
        let jws = Jws::parse(&request.body)?;
        if jws.url.as_deref() != Some(request.url.as_str()) {
            return Err(AcmeProblem::new(
                AcmeErrorType::Unauthorized,
                format!("the JWS was signed for {:?}, not for {}", jws.url.as_deref().unwrap_or(""), request.url),
            ));
        }
        let nonce = jws.nonce.as_deref().unwrap_or("");
        let fresh = self.nonces.check(nonce).map_err(|e| AcmeProblem::new(AcmeErrorType::BadNonce, e.to_string()))?;
        // The signature is checked before the nonce is spent, so a forged request cannot burn a
        // client's nonce; the key is looked up first.
        let (key, account) = match &jws.signer {
            Signer::Key(key) if key_allowed => (key.clone(), None),
            Signer::Key(_) => {
                return Err(AcmeProblem::malformed(
                    "this request must be signed by an account (\"kid\"), not a \"jwk\"",
                ))
            }
            Signer::Account(_) if key_allowed => {
                return Err(AcmeProblem::malformed("new-account requests carry the account's key as \"jwk\""))
            }
            Signer::Account(kid) => {
                let account = self.account_for_kid(directory, kid).await?;
                let key = AccountKey::from_jwk(&account.jwk)
                    .map_err(|e| server_error("a stored account key does not read", e))?;
                (key, Some(account))
            }
        };
        jws.verify(&key)?;
        let redeemed = self.db.run(RedeemNonce { id: fresh.id.to_vec(), expires_at: fresh.expires_at }).await;
        match redeemed {
            Ok(true) => {}
            Ok(false) => {
                return Err(AcmeProblem::new(
                    AcmeErrorType::BadNonce,
                    "the nonce was used already; use the fresh one in Replay-Nonce",
                ))
            }
            // Single use cannot be enforced without the database: refuse rather than risk a replay.
            Err(e) => return Err(server_error("recording the nonce failed", e).with_status(503)),
        }
        Ok(Authenticated { jws, account, key })
    }

    /// The valid account a `kid` names under this directory.
    async fn account_for_kid(&self, directory: &Directory, kid: &str) -> Result<ServerAccount, AcmeProblem> {
        let prefix = directory.account_url("");
        let unknown = || AcmeProblem::new(AcmeErrorType::AccountDoesNotExist, format!("no account {kid} here"));
        let Some(id) = kid.strip_prefix(&prefix).filter(|id| !id.is_empty() && !id.contains('/')) else {
            return Err(unknown());
        };
        let account = match self.db.run(AccountById { id: id.to_owned() }).await {
            Ok(Some(account)) if account.profile_id == directory.profile_id => account,
            Ok(_) => return Err(unknown()),
            Err(e) => return Err(server_error("reading the account failed", e)),
        };
        if account.status != "valid" {
            return Err(AcmeProblem::new(
                AcmeErrorType::Unauthorized,
                format!("account {kid} is {}; it can no longer sign requests", account.status),
            )
            .with_status(401));
        }
        Ok(account)
    }

    /// The account as the client sees it.
    fn view(&self, directory: &Directory, account: &ServerAccount) -> AccountView {
        let url = directory.account_url(&account.id);
        let body = json!({
            "status": account.status,
            "contact": account.contact,
            "termsOfServiceAgreed": account.tos_agreed,
            "orders": format!("{url}/orders"),
            "createdAt": account.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        AccountView { url, body }
    }

    /// new-account (RFC 8555 §7.3): the key's account, created unless `onlyReturnExisting`.
    pub async fn new_account(&self, request: &SignedRequest) -> Result<NewAccount, AcmeProblem> {
        let directory = &self.resolve(&request.at).await?;
        let auth = self.authenticate(directory, request, true).await?;
        let payload = auth.jws.payload_json()?;
        let Value::Object(payload) = payload else {
            return Err(AcmeProblem::malformed("the new-account payload is not a JSON object"));
        };
        let thumbprint = auth.key.thumbprint();
        let existing = self
            .db
            .run(AccountByKey { profile_id: directory.profile_id.clone(), thumbprint: thumbprint.clone() })
            .await
            .map_err(|e| server_error("reading the account failed", e))?;
        if let Some(account) = existing {
            if account.status != "valid" {
                return Err(AcmeProblem::new(
                    AcmeErrorType::Unauthorized,
                    format!("the key's account is {}", account.status),
                )
                .with_status(401));
            }
            return Ok(NewAccount::Existing(self.view(directory, &account)));
        }
        if payload.get("onlyReturnExisting").and_then(Value::as_bool) == Some(true) {
            return Err(AcmeProblem::new(AcmeErrorType::AccountDoesNotExist, "no account holds this key"));
        }
        if payload.contains_key("externalAccountBinding") {
            return Err(AcmeProblem::malformed(
                "this server does not take External Account Binding yet; send the request without it",
            ));
        }
        let tos_agreed = payload.get("termsOfServiceAgreed").and_then(Value::as_bool).unwrap_or(false);
        if self.settings.terms_of_service.is_some() && !tos_agreed {
            return Err(AcmeProblem::new(
                AcmeErrorType::UserActionRequired,
                "agree to the terms of service (termsOfServiceAgreed: true) to create an account",
            ));
        }
        let contact = contacts(payload.get("contact"))?;
        let id = format!("acct-{}", uuid::Uuid::now_v7().simple());
        let made = CreateAccount {
            id,
            profile_id: directory.profile_id.clone(),
            thumbprint,
            jwk: auth.key.jwk(),
            contact,
            tos_agreed,
        };
        let (account, created) = self.db.run(made).await.map_err(|e| server_error("creating the account failed", e))?;
        let view = self.view(directory, &account);
        Ok(if created { NewAccount::Created(view) } else { NewAccount::Existing(view) })
    }

    /// POST to an account URL (RFC 8555 §7.3.2, §7.3.6): POST-as-GET, a contact update, or
    /// `{"status": "deactivated"}`. Only the account itself may.
    pub async fn account(&self, request: &SignedRequest, id: &str) -> Result<AccountView, AcmeProblem> {
        let directory = &self.resolve(&request.at).await?;
        let auth = self.authenticate(directory, request, false).await?;
        let Some(account) = auth.account.filter(|a| a.id == id) else {
            return Err(AcmeProblem::new(AcmeErrorType::Unauthorized, "an account may only read and change itself"));
        };
        if auth.jws.post_as_get {
            return Ok(self.view(directory, &account));
        }
        let Value::Object(payload) = auth.jws.payload_json()? else {
            return Err(AcmeProblem::malformed("the account update is not a JSON object"));
        };
        let deactivate = match payload.get("status").and_then(Value::as_str) {
            None => false,
            Some("deactivated") => true,
            Some(other) => {
                return Err(AcmeProblem::malformed(format!(
                    "an account's status can only be set to \"deactivated\", not {other:?}"
                )))
            }
        };
        let contact = match payload.get("contact") {
            Some(value) => Some(contacts(Some(value))?),
            None => None,
        };
        let updated = self
            .db
            .run(UpdateAccount { id: account.id.clone(), contact, deactivate })
            .await
            .map_err(|e| server_error("updating the account failed", e))?
            .ok_or_else(|| {
                AcmeProblem::new(AcmeErrorType::Unauthorized, "the account is no longer valid").with_status(401)
            })?;
        Ok(self.view(directory, &updated))
    }
}

/// Whether the leaf of `pem_chain` names `key_identifier` as its Authority Key Identifier.
fn issued_under(pem_chain: &str, key_identifier: &[u8]) -> bool {
    use x509_parser::extensions::ParsedExtension;
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(pem_chain.as_bytes()) else { return false };
    let Ok(leaf) = pem.parse_x509() else { return false };
    leaf.extensions().iter().any(|ext| match ext.parsed_extension() {
        ParsedExtension::AuthorityKeyIdentifier(aki) => {
            aki.key_identifier.as_ref().is_some_and(|k| k.0 == key_identifier)
        }
        _ => false,
    })
}

/// An account's `contact`: `mailto:` URLs with one address each, no `hfields` (RFC 8555 §7.3).
fn contacts(value: Option<&Value>) -> Result<Vec<String>, AcmeProblem> {
    let Some(value) = value else { return Ok(Vec::new()) };
    let Some(items) = value.as_array() else {
        return Err(AcmeProblem::malformed("\"contact\" must be an array of URLs"));
    };
    if items.len() > 10 {
        return Err(AcmeProblem::new(AcmeErrorType::InvalidContact, "at most 10 contacts"));
    }
    items
        .iter()
        .map(|item| {
            let text = item.as_str().ok_or_else(|| AcmeProblem::malformed("each contact must be a string"))?;
            let Some(address) = text.strip_prefix("mailto:") else {
                return Err(AcmeProblem::new(
                    AcmeErrorType::UnsupportedContact,
                    format!("contact {text:?}: only mailto: URLs are supported"),
                ));
            };
            let valid = address.len() <= 254
                && !address.contains([',', '?', ' ', '<', '>'])
                && address.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
            if !valid {
                return Err(AcmeProblem::new(
                    AcmeErrorType::InvalidContact,
                    format!("contact {text:?} is not one e-mail address"),
                ));
            }
            Ok(text.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_are_single_mailto_addresses() {
        assert_eq!(contacts(Some(&json!(["mailto:ops@example.com"]))).unwrap(), vec!["mailto:ops@example.com"]);
        assert_eq!(contacts(Some(&json!(["tel:+1555"]))).unwrap_err().kind, AcmeErrorType::UnsupportedContact);
        assert_eq!(
            contacts(Some(&json!(["mailto:a@example.com,b@example.com"]))).unwrap_err().kind,
            AcmeErrorType::InvalidContact
        );
        assert_eq!(contacts(Some(&json!("mailto:x@example.com"))).unwrap_err().kind, AcmeErrorType::Malformed);
        assert!(contacts(None).unwrap().is_empty());
    }
}
