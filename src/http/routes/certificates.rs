//! `/api/v1/certificates`: create, list (keyset pages), get, update (partial) and archive managed
//! certificates, with certctl's paths and field names.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use certctl_actors::domain::audit::AuditActor;
use certctl_actors::domain::certificate::{Certificate, CertificatePatch, CertificateStatus, NewCertificate};
use certctl_actors::queries::audit::{AuditRecord, InsertAuditEvent};
use certctl_actors::queries::certificates::{
    ArchiveCertificate, ChangeOutcome, CreateCertificate, GetCertificate, ListCertificates, UpdateCertificate,
};

use super::path_id;
use crate::http::actor::Actor;
use crate::http::cursor;
use crate::http::json::ValidJson;
use crate::http::problem::ApiError;
use crate::http::AppState;

/// Default and largest page sizes.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 1000;

/// Query parameters of the list endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Page size, 1 to 1000 (default 50).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only certificates in this status.
    status: Option<String>,
}

/// A page of certificates.
#[derive(Serialize)]
struct Page {
    data: Vec<Certificate>,
    next_cursor: Option<String>,
    limit: i64,
}

/// `POST /api/v1/certificates`: 201 with the stored certificate and its `Location`.
#[tracing::instrument(skip_all)]
pub async fn create(
    state: web::Data<AppState>,
    actor: Actor,
    body: ValidJson<NewCertificate>,
) -> Result<HttpResponse, ApiError> {
    let new = body.0;
    new.validate().map_err(ApiError::Validation)?;
    let created = state.db.run(CreateCertificate { new, actor: actor.0 }).await?;
    tracing::info!(certificate_id = %created.id, "certificate created");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/certificates/{}", created.id)))
        .json(created))
}

/// `GET /api/v1/certificates?limit=&cursor=&status=`: certificates in creation order.
#[tracing::instrument(skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    actor: Actor,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let params = params.into_inner();
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!("limit must be between 1 and {MAX_LIMIT} (got {limit})")));
    }
    let after = params.cursor.as_deref().map(cursor::decode).transpose()?;
    let status = params
        .status
        .as_deref()
        .map(|s| {
            CertificateStatus::parse(s).ok_or_else(|| {
                let accepted: Vec<&str> = CertificateStatus::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::InvalidQuery(format!("status must be one of {}", accepted.join(", ")))
            })
        })
        .transpose()?;
    let page = state.db.run(ListCertificates { after, limit, status }).await?;
    let query = serde_json::json!({ "limit": limit, "cursor": params.cursor, "status": params.status });
    audit_read(&state, actor.0, "certificate.list", "*", query).await?;
    Ok(HttpResponse::Ok().json(Page { data: page.items, next_cursor: page.next.as_ref().map(cursor::encode), limit }))
}

/// `GET /api/v1/certificates/{id}`.
#[tracing::instrument(skip_all, fields(certificate_id))]
pub async fn get(state: web::Data<AppState>, actor: Actor, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = path_id(id.into_inner())?;
    tracing::Span::current().record("certificate_id", id.as_str());
    let certificate = state.db.run(GetCertificate { id: id.clone() }).await?.ok_or_else(|| not_found(&id))?;
    audit_read(&state, actor.0, "certificate.read", &id, serde_json::json!({})).await?;
    Ok(HttpResponse::Ok().json(certificate))
}

/// `PUT /api/v1/certificates/{id}`: partial update; absent fields keep their values.
#[tracing::instrument(skip_all, fields(certificate_id))]
pub async fn update(
    state: web::Data<AppState>,
    actor: Actor,
    id: web::Path<String>,
    body: ValidJson<CertificatePatch>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(id.into_inner())?;
    tracing::Span::current().record("certificate_id", id.as_str());
    let patch = body.0;
    patch.validate().map_err(ApiError::Validation)?;
    if patch.is_empty() {
        return Err(ApiError::InvalidBody {
            detail: "the body changes nothing; send at least one field".into(),
            field: None,
        });
    }
    match state.db.run(UpdateCertificate { id: id.clone(), patch, actor: actor.0 }).await? {
        ChangeOutcome::Changed(certificate) => Ok(HttpResponse::Ok().json(certificate)),
        ChangeOutcome::NotFound => Err(not_found(&id)),
        ChangeOutcome::Archived => {
            Err(ApiError::Conflict(format!("certificate {id} is archived and can no longer be changed")))
        }
    }
}

/// `DELETE /api/v1/certificates/{id}`: archives the certificate (status `Archived`); 204.
#[tracing::instrument(skip_all, fields(certificate_id))]
pub async fn archive(
    state: web::Data<AppState>,
    actor: Actor,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(id.into_inner())?;
    tracing::Span::current().record("certificate_id", id.as_str());
    match state.db.run(ArchiveCertificate { id: id.clone(), actor: actor.0 }).await? {
        ChangeOutcome::NotFound => Err(not_found(&id)),
        _ => {
            tracing::info!(certificate_id = %id, "certificate archived");
            Ok(HttpResponse::NoContent().finish())
        }
    }
}

/// Records a successful read when `CERTCTL_AUDIT_READS` is on. A read whose record cannot be
/// written fails: with read auditing on, no read goes unrecorded.
async fn audit_read(
    state: &AppState,
    actor: AuditActor,
    action: &'static str,
    resource_id: &str,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    if !state.audit_reads {
        return Ok(());
    }
    let record = AuditRecord { actor, action, resource_type: "certificate", details };
    state.db.run(InsertAuditEvent { record, resource_id: resource_id.to_string() }).await?;
    Ok(())
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no certificate with id {id}"))
}
