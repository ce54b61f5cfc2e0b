//! What agents do with jobs: claim their work with a lease, answer an AwaitingCSR job with a CSR,
//! fetch an issued chain, and report how a deployment went.
//!
//! Every statement takes the agent's id and only touches rows that agent may see: deployment
//! jobs addressed to it, and renewals of certificates bound to one of its targets.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;

use super::audit::AuditRecord;
use super::job_sql::next_retry;
use crate::db::DbQuery;
use crate::domain::audit::AuditActor;
use crate::domain::job::{Job, JOB_COLUMNS};
use crate::error::DbError;
use crate::etag_cache::Table;

/// `EXISTS` a target of agent `$agent` bound to the certificate `cert` (a column expression).
fn bound_to_agent(cert: &str, agent: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM certificate_target_mappings ctm JOIN deployment_targets t ON t.id = ctm.target_id \
                  WHERE ctm.certificate_id = {cert} AND t.agent_id = {agent})"
    )
}

/// One unit of work for an agent (certctl's `WorkItem`, plus the version to install, the key
/// type to generate and the lease). The server serializes it; `certctl-agent` reads it back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkItem {
    /// The job's id.
    pub id: String,
    /// The job's type (`Deployment`, or `Issuance`/`Renewal` waiting for a CSR).
    #[serde(rename = "type")]
    pub job_type: String,
    /// `Running` (a deployment) or `AwaitingCSR`.
    pub status: String,
    pub certificate_id: String,
    pub common_name: String,
    pub sans: Vec<String>,
    /// The deployment target, for deployments.
    pub target_id: Option<String>,
    pub target_type: Option<String>,
    /// The target's configuration (any JSON), for deployments.
    pub target_config: Option<serde_json::Value>,
    /// The version a deployment installs.
    pub certificate_version_id: Option<String>,
    /// For AwaitingCSR jobs: the profile's allowed key types as `(algorithm, min_size)`.
    #[serde(skip)]
    pub allowed_key_algorithms: Vec<(String, i32)>,
    /// For AwaitingCSR jobs: the key type to generate (filled in by the caller from the profile).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_algorithm: Option<String>,
    /// Until when the job is leased to this agent.
    pub lease_expires_at: Option<DateTime<Utc>>,
}

/// Claims an agent's work: its due Pending deployment jobs become Running under a lease, and the
/// AwaitingCSR renewals of certificates bound to its targets are leased to it (so two agents of
/// one certificate do not both generate keys). Rows another poll holds are skipped.
pub struct ClaimAgentWork {
    pub agent_id: String,
    pub lease: Duration,
    pub limit: i64,
}

impl DbQuery for ClaimAgentWork {
    type Output = Vec<WorkItem>;
    const NAME: &'static str = "claim_agent_work";
    const TOUCHES: &'static [Table] = &[Table::Jobs];

    fn changed(output: &Self::Output) -> bool {
        !output.is_empty()
    }

    async fn run(self, client: &mut Client) -> Result<Vec<WorkItem>, DbError> {
        // The AwaitingCSR lease leaves updated_at alone: the reaper times the wait from it.
        let stmt = client
            .prepare_cached(
                "WITH dep AS ( \
                   SELECT id FROM jobs WHERE agent_id = $1 AND status = 'Pending' AND type = 'Deployment' \
                      AND scheduled_at <= now() ORDER BY scheduled_at, id LIMIT $3 FOR UPDATE SKIP LOCKED), \
                 claimed_dep AS ( \
                   UPDATE jobs j SET status = 'Running', attempts = j.attempts + 1, started_at = now(), \
                          lease_expires_at = now() + make_interval(secs => $2), updated_at = now() \
                     FROM dep WHERE j.id = dep.id \
                   RETURNING j.id, j.type, j.status, j.certificate_id, j.target_id, j.certificate_version_id, \
                             j.lease_expires_at), \
                 csr AS ( \
                   SELECT DISTINCT j.id FROM deployment_targets t \
                     JOIN certificate_target_mappings ctm ON ctm.target_id = t.id \
                     JOIN jobs j ON j.certificate_id = ctm.certificate_id \
                    WHERE t.agent_id = $1 AND j.status = 'AwaitingCSR' \
                      AND (j.agent_id IS NULL OR j.agent_id = $1 OR j.lease_expires_at < now())), \
                 locked AS (SELECT j.id FROM jobs j JOIN csr ON csr.id = j.id \
                    ORDER BY j.scheduled_at, j.id LIMIT $3 FOR UPDATE OF j SKIP LOCKED), \
                 claimed_csr AS ( \
                   UPDATE jobs j SET agent_id = $1, lease_expires_at = now() + make_interval(secs => $2) \
                     FROM locked WHERE j.id = locked.id AND j.status = 'AwaitingCSR' \
                   RETURNING j.id, j.type, j.status, j.certificate_id, j.target_id, j.certificate_version_id, \
                             j.lease_expires_at), \
                 work AS (SELECT * FROM claimed_dep UNION ALL SELECT * FROM claimed_csr) \
                 SELECT w.id, w.type, w.status, w.certificate_id, m.common_name, m.sans, w.target_id, t.type, t.config, \
                        w.certificate_version_id, coalesce(pr.allowed_key_algorithms, '[]'::jsonb), w.lease_expires_at \
                   FROM work w JOIN managed_certificates m ON m.id = w.certificate_id \
                   LEFT JOIN deployment_targets t ON t.id = w.target_id \
                   LEFT JOIN certificate_profiles pr ON pr.id = m.certificate_profile_id \
                  ORDER BY w.type DESC, w.id",
            )
            .await?;
        let rows = client.query(&stmt, &[&self.agent_id, &self.lease.as_secs_f64(), &self.limit]).await?;
        rows.iter()
            .map(|row| {
                let algorithms: serde_json::Value = row.try_get(10)?;
                Ok(WorkItem {
                    id: row.try_get(0)?,
                    job_type: row.try_get(1)?,
                    status: row.try_get(2)?,
                    certificate_id: row.try_get(3)?,
                    common_name: row.try_get(4)?,
                    sans: row.try_get(5)?,
                    target_id: row.try_get(6)?,
                    target_type: row.try_get(7)?,
                    target_config: row.try_get(8)?,
                    certificate_version_id: row.try_get(9)?,
                    allowed_key_algorithms: parse_key_algorithms(&algorithms),
                    key_algorithm: None,
                    lease_expires_at: row.try_get(11)?,
                })
            })
            .collect()
    }
}

/// A profile's `allowed_key_algorithms` JSON as `(algorithm, min_size)` pairs.
pub fn parse_key_algorithms(value: &serde_json::Value) -> Vec<(String, i32)> {
    value
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|a| {
                    let name = a.get("algorithm")?.as_str()?.to_owned();
                    Some((name, a.get("min_size").and_then(|m| m.as_i64()).unwrap_or(0) as i32))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The renewal job a CSR answers, with what checking the CSR needs.
#[derive(Clone, Debug)]
pub struct CsrTarget {
    pub job_id: String,
    pub status: String,
    /// Held by another agent whose lease has not run out.
    pub leased_to_other: bool,
    pub common_name: String,
    pub sans: Vec<String>,
    pub allowed_key_algorithms: Vec<(String, i32)>,
}

/// Finds the issuance/renewal job of `certificate_id` a CSR from `agent_id` answers (`job_id`
/// when given, else the certificate's AwaitingCSR job, else its newest); `None` when the
/// certificate is not bound to one of the agent's targets or has no such job.
pub struct FindCsrJob {
    pub agent_id: String,
    pub certificate_id: String,
    pub job_id: Option<String>,
}

impl DbQuery for FindCsrJob {
    type Output = Option<CsrTarget>;
    const NAME: &'static str = "find_csr_job";

    async fn run(self, client: &mut Client) -> Result<Option<CsrTarget>, DbError> {
        let sql = format!(
            "SELECT j.id, j.status, (j.agent_id IS NOT NULL AND j.agent_id <> $1 AND j.lease_expires_at > now()), \
                    m.common_name, m.sans, coalesce(pr.allowed_key_algorithms, '[]'::jsonb) \
               FROM jobs j JOIN managed_certificates m ON m.id = j.certificate_id \
               LEFT JOIN certificate_profiles pr ON pr.id = m.certificate_profile_id \
              WHERE j.certificate_id = $2 AND ($3::text IS NULL OR j.id = $3) AND j.type IN ('Issuance', 'Renewal') \
                AND {} \
              ORDER BY j.status = 'AwaitingCSR' DESC, j.created_at DESC LIMIT 1",
            bound_to_agent("j.certificate_id", "$1")
        );
        let stmt = client.prepare_cached(&sql).await?;
        let Some(row) = client.query_opt(&stmt, &[&self.agent_id, &self.certificate_id, &self.job_id]).await? else {
            return Ok(None);
        };
        let algorithms: serde_json::Value = row.try_get(5)?;
        Ok(Some(CsrTarget {
            job_id: row.try_get(0)?,
            status: row.try_get(1)?,
            leased_to_other: row.try_get(2)?,
            common_name: row.try_get(3)?,
            sans: row.try_get(4)?,
            allowed_key_algorithms: parse_key_algorithms(&algorithms),
        }))
    }
}

/// Stores a checked CSR on its AwaitingCSR job and queues the job for the dispatcher (Pending,
/// due now), with its audit row. `None` when the job left AwaitingCSR, or another agent took its
/// lease, since it was read.
pub struct SubmitCsr {
    pub agent_id: String,
    pub job_id: String,
    pub csr_pem: String,
    pub actor: AuditActor,
}

impl DbQuery for SubmitCsr {
    type Output = Option<Job>;
    const NAME: &'static str = "submit_csr";
    const TOUCHES: &'static [Table] = &[Table::Jobs, Table::Audit];

    async fn run(self, client: &mut Client) -> Result<Option<Job>, DbError> {
        let audit = AuditRecord {
            details: serde_json::json!({ "agent_id": self.agent_id }),
            actor: self.actor,
            action: "job.csr_submitted".into(),
            resource_type: "job".into(),
        };
        let sql = format!(
            "WITH c AS ( \
               UPDATE jobs j SET csr_pem = $3, status = 'Pending', agent_id = $2, lease_expires_at = NULL, \
                      scheduled_at = now(), updated_at = now() \
                WHERE j.id = $1 AND j.status = 'AwaitingCSR' \
                  AND (j.agent_id IS NULL OR j.agent_id = $2 OR j.lease_expires_at < now()) \
               RETURNING {JOB_COLUMNS}), \
             a AS ({}) SELECT * FROM c",
            AuditRecord::insert_from("c", 4)
        );
        let stmt = client.prepare_cached(&sql).await?;
        let params = audit.params();
        let mut all: Vec<&(dyn ToSql + Sync)> = vec![&self.job_id, &self.agent_id, &self.csr_pem];
        all.extend(params.as_slice());
        client.query_opt(&stmt, &all).await?.as_ref().map(Job::from_row).transpose()
    }
}

/// An issued version as an agent fetches it (serialized by the server, read by `certctl-agent`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IssuedChain {
    pub certificate_id: String,
    pub version_id: String,
    pub serial_number: String,
    pub fingerprint_sha256: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// Leaf first, then the issuing CA and any parents.
    pub pem_chain: String,
    /// The server-generated private key (`CERTCTL_KEYGEN_MODE=server`), sealed; opened by the
    /// caller into `private_key_pem`.
    #[serde(skip)]
    pub private_key_sealed: Option<Vec<u8>>,
    /// The server-generated private key, PEM, for the agent that installs it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_pem: Option<String>,
}

/// The newest issued version of a certificate bound to one of `agent_id`'s targets (or the
/// version `version_id`); `None` when not bound or not issued. `agent_id = None` skips the binding
/// check (the agent endpoints always pass the agent, also for an admin key acting for it).
pub struct AgentCertificate {
    pub agent_id: Option<String>,
    pub certificate_id: String,
    pub version_id: Option<String>,
}

impl DbQuery for AgentCertificate {
    type Output = Option<IssuedChain>;
    const NAME: &'static str = "agent_certificate";

    async fn run(self, client: &mut Client) -> Result<Option<IssuedChain>, DbError> {
        let sql = format!(
            "SELECT v.certificate_id, v.id, v.serial_number, v.fingerprint_sha256, v.not_before, v.not_after, \
                    v.pem_chain, v.private_key_sealed \
               FROM certificate_versions v \
              WHERE v.certificate_id = $2 AND ($3::text IS NULL OR v.id = $3) \
                AND ($1::text IS NULL OR {}) \
              ORDER BY v.created_at DESC, v.id DESC LIMIT 1",
            bound_to_agent("v.certificate_id", "$1")
        );
        let stmt = client.prepare_cached(&sql).await?;
        let row = client.query_opt(&stmt, &[&self.agent_id, &self.certificate_id, &self.version_id]).await?;
        row.map(|row| {
            Ok(IssuedChain {
                certificate_id: row.try_get(0)?,
                version_id: row.try_get(1)?,
                serial_number: row.try_get(2)?,
                fingerprint_sha256: row.try_get(3)?,
                not_before: row.try_get(4)?,
                not_after: row.try_get(5)?,
                pem_chain: row.try_get(6)?,
                private_key_sealed: row.try_get(7)?,
                private_key_pem: None,
            })
        })
        .transpose()
    }
}

/// A deployment job as its agent reports on it.
#[derive(Clone, Debug)]
pub struct ReportedJob {
    pub job: Job,
    /// Fingerprint of the version the job installs.
    pub expected_fingerprint: Option<String>,
}

/// A deployment job addressed to `agent_id`; `None` for any other job (an agent never learns of
/// jobs that are not its own).
pub struct GetAgentJob {
    pub agent_id: String,
    pub job_id: String,
}

impl DbQuery for GetAgentJob {
    type Output = Option<ReportedJob>;
    const NAME: &'static str = "get_agent_job";

    async fn run(self, client: &mut Client) -> Result<Option<ReportedJob>, DbError> {
        let columns = JOB_COLUMNS.split(", ").map(|c| format!("j.{c}")).collect::<Vec<_>>().join(", ");
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {columns}, v.fingerprint_sha256 FROM jobs j \
                   LEFT JOIN certificate_versions v ON v.id = j.certificate_version_id \
                  WHERE j.id = $1 AND j.agent_id = $2"
            ))
            .await?;
        let Some(row) = client.query_opt(&stmt, &[&self.job_id, &self.agent_id]).await? else { return Ok(None) };
        Ok(Some(ReportedJob { job: Job::from_row(&row)?, expected_fingerprint: row.try_get(20)? }))
    }
}

/// How a deployment went, as the agent reports it.
#[derive(Clone, Debug)]
pub struct DeploymentReport {
    pub agent_id: String,
    pub job_id: String,
    /// The attempt the report is for (the job's attempts when it was read).
    pub attempts: i32,
    pub completed: bool,
    pub error: String,
    pub fingerprint: Option<String>,
    pub actor: AuditActor,
}

/// Ends a Running deployment job as Completed (the certificate's `last_deployment_at` moves) or
/// Failed (retried per the certificate's policy while attempts are left), with the agent's
/// result and an audit row. `None` when the job is no longer Running under that attempt.
pub struct ReportDeployment {
    pub report: DeploymentReport,
}

impl DbQuery for ReportDeployment {
    type Output = Option<Job>;
    const NAME: &'static str = "report_deployment";
    const TOUCHES: &'static [Table] = &[Table::Jobs, Table::Certificates, Table::Audit];

    async fn run(self, client: &mut Client) -> Result<Option<Job>, DbError> {
        let r = self.report;
        let result = serde_json::json!({
            "status": if r.completed { "Completed" } else { "Failed" },
            "error": r.error, "fingerprint": r.fingerprint, "reported_at": Utc::now(),
        });
        let audit = AuditRecord {
            details: result.clone(),
            actor: r.actor,
            action: if r.completed { "deployment.complete" } else { "deployment.fail" }.into(),
            resource_type: "job".into(),
        };
        let sql = format!(
            "WITH c AS ( \
               UPDATE jobs j SET status = CASE WHEN $3 THEN 'Completed' ELSE 'Failed' END, \
                      deployment_result = $4, verification_fingerprint = $5, last_error = $6, \
                      error_class = CASE WHEN $3 THEN NULL ELSE 'upstream_4xx' END, \
                      lease_expires_at = NULL, completed_at = now(), updated_at = now(), \
                      retry_at = CASE WHEN NOT $3 AND j.attempts < j.max_attempts THEN {retry} END \
                 FROM managed_certificates m, renewal_policies p \
                WHERE j.id = $1 AND j.agent_id = $2 AND j.status = 'Running' AND j.type = 'Deployment' \
                  AND j.attempts = $7 AND m.id = j.certificate_id AND p.id = m.renewal_policy_id \
               RETURNING {}), \
             m AS ( \
               UPDATE managed_certificates m SET last_deployment_at = now(), updated_at = now() FROM c \
                WHERE m.id = c.certificate_id AND c.status = 'Completed'), \
             a AS ({}) SELECT * FROM c",
            JOB_COLUMNS.split(", ").map(|c| format!("j.{c}")).collect::<Vec<_>>().join(", "),
            AuditRecord::insert_from("c", 8),
            retry = next_retry("now()")
        );
        let stmt = client.prepare_cached(&sql).await?;
        let params = audit.params();
        let json = tokio_postgres::types::Json(&result);
        let mut all: Vec<&(dyn ToSql + Sync)> =
            vec![&r.job_id, &r.agent_id, &r.completed, &json, &r.fingerprint, &r.error, &r.attempts];
        all.extend(params.as_slice());
        client.query_opt(&stmt, &all).await?.as_ref().map(Job::from_row).transpose()
    }
}
