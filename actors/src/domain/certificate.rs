//! Managed certificates: the inventory's central record, with certctl's field names so its
//! clients move over unchanged.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::names::normalize_name;
use super::validation::{FieldError, Violations};

/// Where a certificate is in its life. Stored as certctl's strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum CertificateStatus {
    Pending,
    Active,
    Expiring,
    Expired,
    RenewalInProgress,
    Failed,
    Revoked,
    Archived,
}

impl CertificateStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [CertificateStatus; 8] = [
        CertificateStatus::Pending,
        CertificateStatus::Active,
        CertificateStatus::Expiring,
        CertificateStatus::Expired,
        CertificateStatus::RenewalInProgress,
        CertificateStatus::Failed,
        CertificateStatus::Revoked,
        CertificateStatus::Archived,
    ];

    /// The stored and serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateStatus::Pending => "Pending",
            CertificateStatus::Active => "Active",
            CertificateStatus::Expiring => "Expiring",
            CertificateStatus::Expired => "Expired",
            CertificateStatus::RenewalInProgress => "RenewalInProgress",
            CertificateStatus::Failed => "Failed",
            CertificateStatus::Revoked => "Revoked",
            CertificateStatus::Archived => "Archived",
        }
    }

    /// Parses a stored or client-supplied name (exact, case-sensitive as certctl's).
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

/// A managed certificate as the API returns it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Certificate {
    /// The certificate's id (`mc-…`).
    pub id: String,
    /// A unique, human-readable name.
    pub name: String,
    /// The subject common name (a DNS name, IDNA A-labels, lower case).
    pub common_name: String,
    /// The DNS subject alternative names.
    pub sans: Vec<String>,
    /// The environment (one of `CERTCTL_ENVIRONMENTS`).
    pub environment: String,
    /// The owner.
    pub owner_id: String,
    /// The team.
    pub team_id: String,
    /// The issuer that issues it.
    pub issuer_id: String,
    /// The renewal policy.
    pub renewal_policy_id: String,
    /// The certificate profile; absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_profile_id: Option<String>,
    /// Where the certificate is in its life.
    pub status: CertificateStatus,
    /// When the current version expires; `null` before the first issuance.
    pub expires_at: Option<DateTime<Utc>>,
    /// Free-form labels.
    pub tags: BTreeMap<String, String>,
    /// Deployment targets the certificate is bound to (sorted).
    pub target_ids: Vec<String>,
    /// When it was last issued or renewed; absent before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_renewal_at: Option<DateTime<Utc>>,
    /// When it was last deployed; absent before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_deployment_at: Option<DateTime<Utc>>,
    /// When it was revoked; absent unless revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// The RFC 5280 revocation reason; absent unless revoked.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub revocation_reason: String,
    /// How it entered the inventory (`API`).
    pub source: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// The body of `POST /api/v1/certificates` (serialized only as the audit summary).
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "api-prod", "common_name": "api.example.com", "sans": ["api.example.com", "www.api.example.com"],
    "environment": "production", "owner_id": "o-alice", "team_id": "t-platform", "issuer_id": "iss-local",
    "renewal_policy_id": "rp-standard", "tags": {"service": "api"}}))]
pub struct NewCertificate {
    /// Optional client-chosen id (certctl accepts one); generated as `mc-<uuid>` when absent.
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    pub common_name: String,
    #[serde(default)]
    pub sans: Vec<String>,
    #[serde(default)]
    pub environment: String,
    pub owner_id: String,
    pub team_id: String,
    pub issuer_id: String,
    pub renewal_policy_id: String,
    #[serde(default)]
    pub certificate_profile_id: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Deployment targets to bind the certificate to.
    #[serde(default)]
    pub target_ids: Vec<String>,
}

/// The body of `PUT /api/v1/certificates/{id}`: every field optional, absent means unchanged.
/// Serialized (fields sent only) as the audit summary.
#[derive(Clone, Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificatePatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sans: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewal_policy_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_profile_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// Replaces the set of bound targets (`[]` unbinds all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ids: Option<Vec<String>>,
}

/// Upper bounds that keep one record small and indexable.
const MAX_NAME: usize = 255;
const MAX_DNS_NAME: usize = 253;
const MAX_SANS: usize = 100;
const MAX_TAGS: usize = 50;
const MAX_TARGETS: usize = 100;
const MAX_TAG_LEN: usize = 256;

impl NewCertificate {
    /// Checks every field, reporting all problems at once; `environments` are the accepted
    /// environment names.
    pub fn validate(&self, environments: &[String]) -> Result<(), Vec<FieldError>> {
        let mut v = Violations::default();
        if let Some(id) = &self.id {
            v.id("id", id);
        }
        v.text("name", &self.name, MAX_NAME);
        check_common_name(&mut v, &self.common_name);
        check_sans(&mut v, &self.sans);
        check_environment(&mut v, &self.environment, environments);
        v.id("owner_id", &self.owner_id);
        v.id("team_id", &self.team_id);
        v.id("issuer_id", &self.issuer_id);
        v.id("renewal_policy_id", &self.renewal_policy_id);
        if let Some(profile) = &self.certificate_profile_id {
            v.id("certificate_profile_id", profile);
        }
        check_tags(&mut v, &self.tags);
        check_targets(&mut v, &self.target_ids);
        v.into_result()
    }

    /// Canonical names (IDNA A-labels, lower case), de-duplicated SANs, and the target ids as a
    /// sorted set.
    pub fn normalize(&mut self) {
        normalize_names(Some(&mut self.common_name), Some(&mut self.sans));
        self.target_ids.sort();
        self.target_ids.dedup();
    }
}

impl CertificatePatch {
    /// Checks every present field, reporting all problems at once; `environments` are the
    /// accepted environment names.
    pub fn validate(&self, environments: &[String]) -> Result<(), Vec<FieldError>> {
        let mut v = Violations::default();
        if let Some(name) = &self.name {
            v.text("name", name, MAX_NAME);
        }
        if let Some(cn) = &self.common_name {
            check_common_name(&mut v, cn);
        }
        if let Some(sans) = &self.sans {
            check_sans(&mut v, sans);
        }
        if let Some(env) = &self.environment {
            check_environment(&mut v, env, environments);
        }
        for (field, value) in [
            ("owner_id", &self.owner_id),
            ("team_id", &self.team_id),
            ("issuer_id", &self.issuer_id),
            ("renewal_policy_id", &self.renewal_policy_id),
            ("certificate_profile_id", &self.certificate_profile_id),
        ] {
            if let Some(value) = value {
                v.id(field, value);
            }
        }
        if let Some(tags) = &self.tags {
            check_tags(&mut v, tags);
        }
        if let Some(targets) = &self.target_ids {
            check_targets(&mut v, targets);
        }
        v.into_result()
    }

    /// Canonical names (IDNA A-labels, lower case), de-duplicated SANs, and the target ids as a
    /// sorted set.
    pub fn normalize(&mut self) {
        normalize_names(self.common_name.as_mut(), self.sans.as_mut());
        if let Some(targets) = &mut self.target_ids {
            targets.sort();
            targets.dedup();
        }
    }

    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.common_name.is_none()
            && self.sans.is_none()
            && self.environment.is_none()
            && self.owner_id.is_none()
            && self.team_id.is_none()
            && self.issuer_id.is_none()
            && self.renewal_policy_id.is_none()
            && self.certificate_profile_id.is_none()
            && self.tags.is_none()
            && self.target_ids.is_none()
    }
}

fn check_common_name(v: &mut Violations, cn: &str) {
    v.text("common_name", cn, MAX_DNS_NAME);
    if !cn.trim().is_empty() {
        if let Err(message) = normalize_name(cn) {
            v.add("common_name", message);
        }
    }
}

fn check_sans(v: &mut Violations, sans: &[String]) {
    if sans.len() > MAX_SANS {
        v.add("sans", format!("must list at most {MAX_SANS} names"));
        return;
    }
    for (i, san) in sans.iter().enumerate() {
        if let Err(message) = normalize_name(san) {
            v.add(format!("sans[{i}]"), message);
        }
    }
}

/// Replaces each name by its canonical form (names that are not valid are left for validation
/// to report) and drops duplicate SANs, keeping the first.
fn normalize_names(cn: Option<&mut String>, sans: Option<&mut Vec<String>>) {
    if let Some(cn) = cn {
        if let Ok(canonical) = normalize_name(cn) {
            *cn = canonical;
        }
    }
    if let Some(sans) = sans {
        for san in sans.iter_mut() {
            if let Ok(canonical) = normalize_name(san) {
                *san = canonical;
            }
        }
        let mut seen = std::collections::HashSet::new();
        sans.retain(|san| seen.insert(san.clone()));
    }
}

fn check_environment(v: &mut Violations, env: &str, environments: &[String]) {
    if !env.is_empty() && !environments.iter().any(|e| e == env) {
        v.add("environment", format!("must be one of {} (CERTCTL_ENVIRONMENTS), or empty", environments.join(", ")));
    }
}

fn check_targets(v: &mut Violations, targets: &[String]) {
    if targets.len() > MAX_TARGETS {
        v.add("target_ids", format!("must list at most {MAX_TARGETS} targets"));
        return;
    }
    for (i, target) in targets.iter().enumerate() {
        v.id(&format!("target_ids[{i}]"), target);
    }
}

fn check_tags(v: &mut Violations, tags: &BTreeMap<String, String>) {
    if tags.len() > MAX_TAGS {
        v.add("tags", format!("must have at most {MAX_TAGS} entries"));
    }
    for (key, value) in tags {
        if key.is_empty() || key.len() > MAX_TAG_LEN || value.len() > MAX_TAG_LEN {
            v.add(
                format!("tags.{key}"),
                format!("keys must be 1 to {MAX_TAG_LEN} bytes and values at most {MAX_TAG_LEN}"),
            );
        } else if key.chars().chain(value.chars()).any(super::validation::is_unsafe_char) {
            // PostgreSQL's jsonb cannot store NUL, and no tag needs control or invisible characters.
            v.add(
                format!("tags.{}", key.escape_default()),
                format!("keys and values {}", super::validation::UNSAFE_TEXT),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envs() -> Vec<String> {
        vec!["production".into()]
    }

    fn sample() -> NewCertificate {
        serde_json::from_value(serde_json::json!({
            "name": "api", "common_name": "api.example.com", "owner_id": "o-alice",
            "team_id": "t-platform", "issuer_id": "iss-local", "renewal_policy_id": "rp-standard"
        }))
        .unwrap()
    }

    #[test]
    fn a_minimal_certificate_is_valid() {
        assert_eq!(sample().validate(&envs()), Ok(()));
    }

    #[test]
    fn every_bad_field_is_reported() {
        let mut c = sample();
        c.name = String::new();
        c.common_name = "has space.example.com".into();
        c.sans = vec!["ok.example.com".into(), String::new()];
        c.owner_id = "bad id".into();
        let fields: Vec<String> = c.validate(&envs()).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "common_name", "sans[1]", "owner_id"]);
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in CertificateStatus::ALL {
            assert_eq!(CertificateStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(CertificateStatus::parse("active"), None);
    }
}
