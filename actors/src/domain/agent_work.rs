//! What agents send about their work: a CSR answering a renewal, and how a deployment went.

use serde::Deserialize;

use super::validation::{FieldError, Violations};

/// Largest CSR accepted, in bytes of PEM.
pub const MAX_CSR_PEM: usize = 64 * 1024;

/// `POST /api/v1/agents/{id}/csr`: the CSR for a certificate's AwaitingCSR job.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CsrSubmission {
    /// The managed certificate the CSR is for.
    pub certificate_id: String,
    /// The job it answers; by default the certificate's AwaitingCSR job.
    pub job_id: Option<String>,
    /// The PKCS#10 CSR, PEM (at most 64 KiB).
    pub csr_pem: String,
}

impl CsrSubmission {
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut v = Violations::default();
        v.id("certificate_id", &self.certificate_id);
        if let Some(job_id) = &self.job_id {
            v.id("job_id", job_id);
        }
        if self.csr_pem.len() > MAX_CSR_PEM {
            v.add("csr_pem", "must be at most 64 KiB");
        }
        v.into_result()
    }
}

/// `POST /api/v1/agents/{id}/jobs/{job_id}/status`: how a deployment went.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    /// `Completed` or `Failed`.
    pub status: String,
    /// What went wrong, for `Failed` (at most 4000 characters).
    #[serde(default)]
    pub error: String,
    /// SHA-256 of the installed leaf's DER, hex (colons allowed).
    pub fingerprint: Option<String>,
}

/// A checked [`StatusReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedReport {
    pub completed: bool,
    pub error: String,
    /// Lower-case hex without colons.
    pub fingerprint: Option<String>,
}

impl StatusReport {
    /// Checks the report and normalises its fingerprint.
    pub fn check(self) -> Result<CheckedReport, Vec<FieldError>> {
        let mut v = Violations::default();
        let completed = match self.status.as_str() {
            "Completed" => true,
            "Failed" => false,
            other => {
                v.add("status", format!("must be Completed or Failed (got {other:?})"));
                false
            }
        };
        v.optional_text("error", &self.error, 4000);
        let fingerprint = self.fingerprint.map(|f| f.replace(':', "").to_ascii_lowercase());
        match &fingerprint {
            Some(f) if f.len() != 64 || !f.bytes().all(|b| b.is_ascii_hexdigit()) => {
                v.add("fingerprint", "must be a SHA-256 fingerprint: 64 hex digits")
            }
            None if completed => v.add("fingerprint", "is required when reporting Completed"),
            _ => {}
        }
        v.into_result()?;
        Ok(CheckedReport { completed, error: self.error, fingerprint })
    }
}
