//! What agents do with their work, each flow one call: claim their due work, answer a renewal
//! with a CSR (checked on a blocking thread, then issued by the dispatcher), fetch an issued
//! chain (with the server-generated key, opened on a blocking thread and audited), and report
//! how a deployment went.
//!
//! Every call takes the agent the request acts as; the statements only reach that agent's jobs
//! and the certificates bound to its targets.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;

use crate::crypto::csr::verify_csr;
use crate::crypto::key_algorithm::{choose, KeyAlgorithm};
use crate::crypto::seal::SealingKey;
use crate::db::Db;
use crate::domain::agent_work::{CsrSubmission, StatusReport};
use crate::domain::audit::AuditActor;
use crate::domain::job::Job;
use crate::domain::validation::{is_valid_id, FieldError};
use crate::error::DbError;
use crate::queries::agent_work::{
    AgentCertificate, ClaimAgentWork, DeploymentReport, FindCsrJob, GetAgentJob, IssuedChain, ReportDeployment,
    SubmitCsr, WorkItem,
};
use crate::queries::audit::{AuditRecord, InsertAuditEvent};
use crate::renewal::dispatcher::{RenewalDispatcher, Wake};

/// Work items handed out per poll.
const WORK_PER_POLL: i64 = 50;

/// What a CSR submission found.
#[derive(Debug)]
pub enum CsrOutcome {
    /// Stored; the job is Pending again and the dispatcher was woken to issue it.
    Accepted(Box<Job>),
    /// The submission's fields, or the CSR itself, are not acceptable.
    Invalid(Vec<FieldError>),
    /// No issuance or renewal job of that certificate for a target of this agent.
    NoJob,
    /// The job is not waiting for a CSR.
    NotAwaitingCsr { job_id: String, status: String },
    /// Another agent of the certificate holds the job's lease.
    LeasedToAnotherAgent { job_id: String },
    /// The job left AwaitingCSR, or another agent took it, between the check and the write.
    ChangedMeanwhile { job_id: String },
}

/// What a deployment report found.
#[derive(Debug)]
pub enum ReportOutcome {
    Recorded(Box<Job>),
    Invalid(Vec<FieldError>),
    /// The agent has no such job.
    NoJob,
    /// Only Running deployment jobs take reports.
    NotReportable {
        job_type: String,
        status: String,
    },
    /// The job is no longer Running under the attempt that was read (its lease ran out).
    ChangedMeanwhile,
}

/// What a chain pickup found.
#[derive(Debug)]
pub enum Pickup {
    Chain(Box<IssuedChain>),
    Invalid(Vec<FieldError>),
    /// Not bound to one of the agent's targets, or not issued (yet).
    NotIssued,
}

/// See the module docs. Cheap to clone.
#[derive(Clone)]
pub struct AgentWork {
    /// Where the agents' claims, CSRs, pickups and reports are written.
    db: Db,
    /// Woken once a CSR is accepted, so its job is issued at once instead of at the next tick.
    dispatcher: Addr<RenewalDispatcher>,
    /// Opens server-generated keys for the agents that deploy them.
    sealing: Arc<SealingKey>,
    /// `CERTCTL_AGENT_WORK_LEASE`.
    lease: Duration,
}

impl AgentWork {
    pub(crate) fn new(db: Db, dispatcher: Addr<RenewalDispatcher>, sealing: Arc<SealingKey>, lease: Duration) -> Self {
        AgentWork { db, dispatcher, sealing, lease }
    }

    /// The agent's due deployments (now Running, leased to it) and the renewals waiting for its
    /// CSR (leased to it, with the key type to generate).
    pub async fn claim(&self, agent: &str) -> Result<Vec<WorkItem>, DbError> {
        let query = ClaimAgentWork { agent_id: agent.to_string(), lease: self.lease, limit: WORK_PER_POLL };
        let mut jobs = self.db.run(query).await?;
        for job in jobs.iter_mut().filter(|j| j.status == "AwaitingCSR") {
            job.key_algorithm =
                choose(&job.allowed_key_algorithms, KeyAlgorithm::EcdsaP256).map(|a| a.as_str().to_owned());
        }
        Ok(jobs)
    }

    /// Checks a CSR (signature, key type against the profile, names against the certificate) on
    /// a blocking thread, stores it on the AwaitingCSR job and wakes the dispatcher.
    pub async fn submit_csr(
        &self,
        agent: &str,
        submission: CsrSubmission,
        actor: AuditActor,
    ) -> Result<CsrOutcome, DbError> {
        if let Err(errors) = submission.validate() {
            return Ok(CsrOutcome::Invalid(errors));
        }
        let CsrSubmission { certificate_id, job_id, csr_pem } = submission;
        let find = FindCsrJob { agent_id: agent.to_string(), certificate_id, job_id };
        let Some(target) = self.db.run(find).await? else { return Ok(CsrOutcome::NoJob) };
        if target.status != "AwaitingCSR" {
            return Ok(CsrOutcome::NotAwaitingCsr { job_id: target.job_id, status: target.status });
        }
        if target.leased_to_other {
            return Ok(CsrOutcome::LeasedToAnotherAgent { job_id: target.job_id });
        }
        let (pem, checked_for) = (csr_pem.clone(), target.clone());
        let checked = tokio::task::spawn_blocking(move || {
            verify_csr(&pem).and_then(|csr| {
                csr.check_against(&checked_for.common_name, &checked_for.sans, &checked_for.allowed_key_algorithms)
                    .map(|()| csr)
            })
        })
        .await
        .map_err(|e| anyhow::anyhow!("the CSR check thread failed: {e}"))?;
        let csr = match checked {
            Ok(csr) => csr,
            Err(message) => return Ok(CsrOutcome::Invalid(vec![FieldError { field: "csr_pem".into(), message }])),
        };
        let submit = SubmitCsr { agent_id: agent.to_string(), job_id: target.job_id.clone(), csr_pem, actor };
        let Some(job) = self.db.run(submit).await? else {
            return Ok(CsrOutcome::ChangedMeanwhile { job_id: target.job_id });
        };
        self.dispatcher.do_send(Wake);
        tracing::info!(job_id = %job.id, key_algorithm = %csr.key_algorithm, "CSR accepted");
        Ok(CsrOutcome::Accepted(Box::new(job)))
    }

    /// The newest issued version (or `version_id`) of a certificate bound to one of the agent's
    /// targets, with its chain, and the private key when the server generated it: opened on a
    /// blocking thread, and every hand-over audited.
    pub async fn pick_up(
        &self,
        agent: &str,
        certificate_id: &str,
        version_id: Option<String>,
        actor: AuditActor,
    ) -> Result<Pickup, DbError> {
        if version_id.as_deref().is_some_and(|v| !is_valid_id(v)) {
            let message = "must be a version id such as cv-0193…".to_string();
            return Ok(Pickup::Invalid(vec![FieldError { field: "version_id".into(), message }]));
        }
        let query = AgentCertificate {
            agent_id: Some(agent.to_string()),
            certificate_id: certificate_id.to_string(),
            version_id,
        };
        let Some(mut chain) = self.db.run(query).await? else { return Ok(Pickup::NotIssued) };
        if let Some(sealed) = chain.private_key_sealed.take() {
            let sealing = self.sealing.clone();
            let opened = tokio::task::spawn_blocking(move || sealing.open(&sealed))
                .await
                .map_err(|e| anyhow::anyhow!("the unsealing thread failed: {e}"))?
                .map_err(|e| anyhow::anyhow!("a stored private key does not open: {e}"))?;
            let pem = String::from_utf8(opened).map_err(|_| anyhow::anyhow!("a stored private key is not PEM text"))?;
            let record = AuditRecord {
                actor,
                action: "certificate.key_fetch".into(),
                resource_type: "certificate".into(),
                details: serde_json::json!({ "agent_id": agent, "version_id": chain.version_id }),
            };
            self.db.run(InsertAuditEvent { record, resource_id: certificate_id.to_string() }).await?;
            tracing::info!(agent_id = %agent, certificate_id, "server-generated key handed to agent");
            chain.private_key_pem = Some(pem);
        }
        Ok(Pickup::Chain(Box::new(chain)))
    }

    /// Ends one of the agent's Running deployment jobs as Completed (with the deployed
    /// fingerprint, which must be the version's) or Failed.
    pub async fn report_deployment(
        &self,
        agent: &str,
        job_id: &str,
        report: StatusReport,
        actor: AuditActor,
    ) -> Result<ReportOutcome, DbError> {
        let report = match report.check() {
            Ok(report) => report,
            Err(errors) => return Ok(ReportOutcome::Invalid(errors)),
        };
        let found = self.db.run(GetAgentJob { agent_id: agent.to_string(), job_id: job_id.to_string() }).await?;
        let Some(found) = found else { return Ok(ReportOutcome::NoJob) };
        if found.job.job_type != "Deployment" || found.job.status != "Running" {
            return Ok(ReportOutcome::NotReportable { job_type: found.job.job_type, status: found.job.status });
        }
        if let (true, Some(got), Some(expected)) = (report.completed, &report.fingerprint, &found.expected_fingerprint)
        {
            if !got.eq_ignore_ascii_case(expected) {
                let message =
                    format!("the deployed certificate ({got}) is not the version this job installs ({expected})");
                return Ok(ReportOutcome::Invalid(vec![FieldError { field: "fingerprint".into(), message }]));
            }
        }
        let report = DeploymentReport {
            agent_id: agent.to_string(),
            job_id: job_id.to_string(),
            attempts: found.job.attempts,
            completed: report.completed,
            error: report.error,
            fingerprint: report.fingerprint,
            actor,
        };
        Ok(match self.db.run(ReportDeployment { report }).await? {
            Some(job) => {
                tracing::info!(job_id = %job.id, status = %job.status, "deployment reported");
                ReportOutcome::Recorded(Box::new(job))
            }
            None => ReportOutcome::ChangedMeanwhile,
        })
    }
}
