//! Triage of certificates agents found on disk, each one call: claiming one makes it a managed
//! certificate (through the certificate writer, due for issuance at once) and marks it Managed;
//! dismissing marks it Dismissed. Only Unmanaged certificates are triaged.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::certificate_writer::Writer;
use crate::db::Db;
use crate::domain::audit::AuditActor;
use crate::domain::certificate::{Certificate, NewCertificate};
use crate::domain::discovery::{DiscoveredCertificate, DiscoveryReport};
use crate::domain::validation::FieldError;
use crate::error::DbError;
use crate::inventory::Checked;
use crate::queries::certificates::CreateCertificate;
use crate::queries::discovery::{GetDiscovered, RecordDiscoveryScan, ScanRecorded, TriageDiscovered};

/// What claiming needs besides the discovered names: where the managed certificate belongs.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// The managed certificate's id; generated when absent.
    pub id: Option<String>,
    /// Default: the discovered common name.
    pub name: Option<String>,
    /// One of `CERTCTL_ENVIRONMENTS` (when set).
    #[serde(default)]
    pub environment: String,
    pub owner_id: String,
    pub team_id: String,
    pub issuer_id: String,
    pub renewal_policy_id: String,
    pub certificate_profile_id: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub target_ids: Vec<String>,
}

/// What a triage found.
#[derive(Debug)]
pub enum Triage {
    /// Claimed: the discovered certificate (now Managed) and the managed certificate made of it.
    Claimed(Box<DiscoveredCertificate>, Box<Certificate>),
    /// Dismissed.
    Dismissed(Box<DiscoveredCertificate>),
    /// The claim's fields are not acceptable.
    Invalid(Vec<FieldError>),
    NotFound,
    /// Not Unmanaged (already claimed or dismissed); with its status.
    NotUnmanaged(String),
    /// Triaged by someone else between the check and the write; for a claim, with the id of the
    /// managed certificate that was created anyway.
    ChangedMeanwhile(Option<String>),
}

/// See the module docs. Cheap to clone.
#[derive(Clone)]
pub struct DiscoveryTriage {
    /// Where scan reports and triage decisions are written.
    db: Db,
    /// Creates the managed certificate of a claim, like every other creation (see ARCHITECTURE.md).
    writer: Writer,
    /// `CERTCTL_ENVIRONMENTS`: what a claimed certificate's environment may be.
    environments: Vec<String>,
}

impl DiscoveryTriage {
    pub(crate) fn new(db: Db, writer: Writer, environments: Vec<String>) -> Self {
        DiscoveryTriage { db, writer, environments }
    }

    /// Records an agent's scan report (checked, then normalised).
    pub async fn record_scan(
        &self,
        agent_id: &str,
        mut report: DiscoveryReport,
    ) -> Result<Checked<ScanRecorded>, DbError> {
        if let Err(errors) = report.validate() {
            return Ok(Checked::Invalid(errors));
        }
        report.normalize();
        Ok(Checked::Done(self.db.run(RecordDiscoveryScan { agent_id: agent_id.to_string(), report }).await?))
    }

    /// Makes an Unmanaged discovered certificate a managed one with its names.
    pub async fn claim(&self, id: &str, request: ClaimRequest, actor: AuditActor) -> Result<Triage, DbError> {
        let Some(found) = self.db.run(GetDiscovered { id: id.to_string() }).await? else { return Ok(Triage::NotFound) };
        if found.status != "Unmanaged" {
            return Ok(Triage::NotUnmanaged(found.status));
        }
        let common_name = if found.common_name.is_empty() {
            found.sans.first().cloned().unwrap_or_default()
        } else {
            found.common_name.clone()
        };
        let mut new = NewCertificate {
            id: request.id,
            name: request.name.unwrap_or_else(|| common_name.clone()),
            common_name,
            sans: found.sans.clone(),
            environment: request.environment,
            owner_id: request.owner_id,
            team_id: request.team_id,
            issuer_id: request.issuer_id,
            renewal_policy_id: request.renewal_policy_id,
            certificate_profile_id: request.certificate_profile_id,
            tags: request.tags,
            target_ids: request.target_ids,
        };
        new.normalize();
        if let Err(errors) = new.validate(&self.environments) {
            return Ok(Triage::Invalid(errors));
        }
        let created = self.writer.create(CreateCertificate { new, actor: actor.clone() }).await?;
        let triage = TriageDiscovered { id: id.to_string(), managed_certificate_id: Some(created.id.clone()), actor };
        Ok(match self.db.run(triage).await? {
            Some(updated) => Triage::Claimed(Box::new(updated), Box::new(created)),
            None => Triage::ChangedMeanwhile(Some(created.id)),
        })
    }

    /// Marks an Unmanaged discovered certificate Dismissed.
    pub async fn dismiss(&self, id: &str, actor: AuditActor) -> Result<Triage, DbError> {
        let triage = TriageDiscovered { id: id.to_string(), managed_certificate_id: None, actor };
        if let Some(updated) = self.db.run(triage).await? {
            return Ok(Triage::Dismissed(Box::new(updated)));
        }
        Ok(match self.db.run(GetDiscovered { id: id.to_string() }).await? {
            Some(found) => Triage::NotUnmanaged(found.status),
            None => Triage::NotFound,
        })
    }
}
