//! The inventory's requests, one engine call each: certificates created and changed (normalised,
//! checked against `CERTCTL_ENVIRONMENTS`, created through the certificate writer), the reference
//! resources created and changed (checked by their type), and audited reads (the read, then, with
//! `CERTCTL_AUDIT_READS` on, its audit row: a read whose record cannot be written fails, so no
//! read goes unrecorded).

use std::sync::Arc;

use crate::certificate_writer::Writer;
use crate::crypto::seal::SealingKey;
use crate::db::{Db, DbQuery};
use crate::domain::audit::AuditActor;
use crate::domain::certificate::{Certificate, CertificatePatch, NewCertificate};
use crate::domain::resources::Resource;
use crate::domain::validation::FieldError;
use crate::error::DbError;
use crate::queries::audit::{AuditRecord, InsertAuditEvent};
use crate::queries::certificates::{ChangeOutcome, CreateCertificate, UpdateCertificate};
use crate::queries::resources::{CreateResource, UpdateResource};

/// A change checked before it is made.
#[derive(Debug)]
pub enum Checked<T> {
    /// Made: what the statement answered.
    Done(T),
    /// Refused: every field at fault.
    Invalid(Vec<FieldError>),
    /// A patch that names no field.
    NothingToChange,
}

/// What an audited read records: `<resource_type>.<verb>` on `resource_id` (`*` for lists).
pub struct AuditedRead {
    pub actor: AuditActor,
    pub resource_type: String,
    pub verb: &'static str,
    pub resource_id: String,
    pub details: serde_json::Value,
}

impl AuditedRead {
    /// `<resource_type>.<verb>` on `resource_id` by `actor`, with no details.
    pub fn of(actor: AuditActor, resource_type: &str, verb: &'static str, resource_id: &str) -> Self {
        AuditedRead {
            actor,
            resource_type: resource_type.to_string(),
            verb,
            resource_id: resource_id.to_string(),
            details: serde_json::json!({}),
        }
    }

    /// The same, with `details` (a list's query, say).
    pub fn with_details(self, details: serde_json::Value) -> Self {
        AuditedRead { details, ..self }
    }
}

/// The inventory service. Cheap to clone.
#[derive(Clone)]
pub struct Inventory {
    /// The database handle.
    db: Db,
    /// Every certificate creation goes through it (see ARCHITECTURE.md).
    writer: Writer,
    /// `CERTCTL_ENVIRONMENTS`: the environments a certificate may carry.
    environments: Arc<[String]>,
    /// `CERTCTL_AUDIT_READS`: whether successful reads add an audit row.
    audit_reads: bool,
    /// Seals issuers' secret config fields before they are stored.
    sealing: Arc<SealingKey>,
}

impl Inventory {
    pub(crate) fn new(
        db: Db,
        writer: Writer,
        environments: Arc<[String]>,
        audit_reads: bool,
        sealing: Arc<SealingKey>,
    ) -> Self {
        Inventory { db, writer, environments, audit_reads, sealing }
    }

    /// Whether reads are audited (then nothing may answer a read from a cache).
    pub fn audits_reads(&self) -> bool {
        self.audit_reads
    }

    /// `POST /api/v1/certificates`.
    pub async fn create_certificate(
        &self,
        mut new: NewCertificate,
        actor: AuditActor,
    ) -> Result<Checked<Certificate>, DbError> {
        new.normalize();
        if let Err(errors) = new.validate(&self.environments) {
            return Ok(Checked::Invalid(errors));
        }
        Ok(Checked::Done(self.writer.create(CreateCertificate { new, actor }).await?))
    }

    /// `PUT /api/v1/certificates/{id}`: a partial update.
    pub async fn update_certificate(
        &self,
        id: String,
        mut patch: CertificatePatch,
        actor: AuditActor,
    ) -> Result<Checked<ChangeOutcome>, DbError> {
        patch.normalize();
        if let Err(errors) = patch.validate(&self.environments) {
            return Ok(Checked::Invalid(errors));
        }
        if patch.is_empty() {
            return Ok(Checked::NothingToChange);
        }
        Ok(Checked::Done(self.db.run(UpdateCertificate { id, patch, actor }).await?))
    }

    /// `POST` of a reference resource.
    pub async fn create<R: Resource>(&self, mut new: R::New, actor: AuditActor) -> Result<Checked<R>, DbError> {
        if let Err(errors) = R::validate_new(&new) {
            return Ok(Checked::Invalid(errors));
        }
        R::seal_new(&mut new, &self.sealing);
        Ok(Checked::Done(self.db.run(CreateResource::<R> { new, actor }).await?))
    }

    /// `PUT` of a reference resource: a partial update; `None` when no such resource exists.
    pub async fn update<R: Resource>(
        &self,
        id: String,
        mut patch: R::Patch,
        actor: AuditActor,
    ) -> Result<Checked<Option<R>>, DbError> {
        if let Err(errors) = R::validate_patch(&patch) {
            return Ok(Checked::Invalid(errors));
        }
        R::seal_patch(&mut patch, &self.sealing);
        // A patch serialises only the fields it sets.
        if serde_json::to_value(&patch).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty())) {
            return Ok(Checked::NothingToChange);
        }
        Ok(Checked::Done(self.db.run(UpdateResource::<R> { id, patch, actor }).await?))
    }

    /// A read (a list or a page): the query, then its audit row.
    pub async fn read<Q: DbQuery>(&self, query: Q, read: AuditedRead) -> Result<Q::Output, DbError> {
        let output = self.db.run(query).await?;
        self.record(read).await?;
        Ok(output)
    }

    /// A read of one thing: the query, then its audit row when it found something.
    pub async fn read_one<T, Q>(&self, query: Q, read: AuditedRead) -> Result<Option<T>, DbError>
    where
        T: Send + 'static,
        Q: DbQuery<Output = Option<T>>,
    {
        let found = self.db.run(query).await?;
        if found.is_some() {
            self.record(read).await?;
        }
        Ok(found)
    }

    async fn record(&self, read: AuditedRead) -> Result<(), DbError> {
        if !self.audit_reads {
            return Ok(());
        }
        let AuditedRead { actor, resource_type, verb, resource_id, details } = read;
        let record = AuditRecord { actor, action: format!("{resource_type}.{verb}"), resource_type, details };
        self.db.run(InsertAuditEvent { record, resource_id }).await
    }
}
