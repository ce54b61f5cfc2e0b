//! Certificate operations: `POST /api/v1/certificates/{id}/renew`, `/revoke`,
//! `GET /{id}/export/pem`, and the admin bulk operations `bulk-renew` and `bulk-revoke`.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use certctl_actors::domain::revocation::RevocationReason;
use certctl_actors::domain::validation::Violations;
use certctl_actors::queries::certificate_ops::{
    BulkCriteria, BulkRevoke, CurrentChain, RenewOutcome, RevokeCertificate, RevokeOutcome,
};

use crate::auth::Admin;
use crate::http::actor::Actor;
use crate::http::json::{OptionalJson, ValidJson};
use crate::http::paging::rfc3339;
use crate::http::path_id::Id;
use crate::http::problem::{ApiError, Conflict};
use crate::http::AppState;

/// Largest number of explicit ids one bulk request may name (criteria match any number).
const MAX_BULK_IDS: usize = 10_000;

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no certificate with id {id}"))
}

/// `POST /api/v1/certificates/{id}/renew`: 202 with the job; 409 when one is already active.
#[tracing::instrument(skip_all, fields(certificate_id))]
pub async fn renew(state: web::Data<AppState>, actor: Actor, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    tracing::Span::current().record("certificate_id", id.as_str());
    match state.engine.renewals().renew(&id, actor.0).await? {
        RenewOutcome::Enqueued(job) => {
            Ok(HttpResponse::Accepted().insert_header((header::LOCATION, format!("/api/v1/jobs/{}", job.id))).json(job))
        }
        RenewOutcome::NotFound => Err(not_found(&id)),
        RenewOutcome::NotRenewable(status) => Err(ApiError::Conflict(
            Conflict::WrongState,
            format!("certificate {id} is {status}; archived and revoked certificates are not renewed"),
        )),
        RenewOutcome::AlreadyActive(job) => Err(ApiError::Conflict(
            Conflict::RenewalActive,
            format!("certificate {id} already has an active renewal: job {job}"),
        )),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// An RFC 5280 reason name; `unspecified` when absent.
    #[serde(default)]
    reason: Option<String>,
}

fn reason(value: Option<&str>, field: &str) -> Result<RevocationReason, ApiError> {
    match value {
        None => Ok(RevocationReason::Unspecified),
        Some(v) => RevocationReason::parse(v).ok_or_else(|| {
            let names: Vec<&str> = RevocationReason::ALL.iter().map(|r| r.as_str()).collect();
            let mut violations = Violations::default();
            violations.add(field, format!("must be one of {}", names.join(", ")));
            ApiError::Validation(violations.into_result().err().unwrap_or_default())
        }),
    }
}

/// `POST /api/v1/certificates/{id}/revoke` `{"reason": "keyCompromise"}`.
#[tracing::instrument(skip_all, fields(certificate_id))]
pub async fn revoke(
    state: web::Data<AppState>,
    actor: Actor,
    id: Id,
    body: OptionalJson<RevokeBody>,
) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    tracing::Span::current().record("certificate_id", id.as_str());
    let body = body.0.unwrap_or_default();
    let reason = reason(body.reason.as_deref(), "reason")?;
    match state.db.run(RevokeCertificate { certificate_id: id.clone(), reason, actor: actor.0 }).await? {
        RevokeOutcome::Revoked { serial_number, revoked_at } => Ok(HttpResponse::Ok().json(json!({
            "certificate_id": id, "serial_number": serial_number, "reason": reason.as_str(), "revoked_at": revoked_at
        }))),
        RevokeOutcome::NotFound => Err(not_found(&id)),
        RevokeOutcome::NeverIssued => Err(ApiError::Conflict(
            Conflict::WrongState,
            format!("certificate {id} was never issued; nothing to revoke"),
        )),
        RevokeOutcome::NotRevocable(status) => {
            Err(ApiError::Conflict(Conflict::WrongState, format!("certificate {id} is {status}")))
        }
    }
}

/// `GET /api/v1/certificates/{id}/export/pem`: the current chain (leaf first), as a PEM file.
#[tracing::instrument(skip_all, fields(certificate_id))]
pub async fn export_pem(state: web::Data<AppState>, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    tracing::Span::current().record("certificate_id", id.as_str());
    let (name, chain) =
        state.db.run(CurrentChain { certificate_id: id.clone() }).await?.ok_or_else(|| not_found(&id))?;
    let chain = chain.ok_or_else(|| ApiError::NotFound(format!("certificate {id} has no issued version yet")))?;
    let file: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    Ok(HttpResponse::Ok()
        .content_type("application/x-pem-file")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}.pem\"")))
        .body(chain))
}

/// The criteria of both bulk operations (certctl's field names).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    #[serde(default)]
    profile_id: Option<String>,
    #[serde(default)]
    owner_id: Option<String>,
    #[serde(default)]
    team_id: Option<String>,
    #[serde(default)]
    issuer_id: Option<String>,
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    certificate_ids: Option<Vec<String>>,
    /// RFC 3339.
    #[serde(default)]
    expiring_before: Option<String>,
    #[serde(default)]
    dry_run: bool,
    /// bulk-revoke only.
    #[serde(default)]
    reason: Option<String>,
}

fn criteria(body: &BulkBody) -> Result<BulkCriteria, ApiError> {
    let mut v = Violations::default();
    for (field, value) in [
        ("profile_id", &body.profile_id),
        ("owner_id", &body.owner_id),
        ("team_id", &body.team_id),
        ("issuer_id", &body.issuer_id),
        ("agent_id", &body.agent_id),
    ] {
        if let Some(value) = value {
            v.id(field, value);
        }
    }
    if let Some(ids) = &body.certificate_ids {
        if ids.is_empty() || ids.len() > MAX_BULK_IDS {
            v.add("certificate_ids", format!("must list 1 to {MAX_BULK_IDS} ids"));
        }
        for (i, id) in ids.iter().enumerate().take(MAX_BULK_IDS) {
            v.id(&format!("certificate_ids[{i}]"), id);
        }
    }
    let expiring_before = match rfc3339("expiring_before", body.expiring_before.as_deref()) {
        Ok(t) => t,
        Err(_) => {
            v.add("expiring_before", "must be an RFC 3339 time such as 2026-12-01T00:00:00Z");
            None
        }
    };
    let criteria = BulkCriteria {
        profile_id: body.profile_id.clone(),
        owner_id: body.owner_id.clone(),
        team_id: body.team_id.clone(),
        issuer_id: body.issuer_id.clone(),
        agent_id: body.agent_id.clone(),
        certificate_ids: body.certificate_ids.clone(),
        expiring_before,
    };
    if criteria.is_empty() && body.expiring_before.is_none() {
        v.add(
            "criteria",
            "name at least one of profile_id, owner_id, team_id, issuer_id, agent_id, certificate_ids, expiring_before",
        );
    }
    v.into_result().map_err(ApiError::Validation)?;
    Ok(criteria)
}

/// `POST /api/v1/certificates/bulk-renew` (admin): one statement for any number of matches.
#[tracing::instrument(skip_all)]
pub async fn bulk_renew(
    state: web::Data<AppState>,
    _admin: Admin,
    actor: Actor,
    body: ValidJson<BulkBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    if body.reason.is_some() {
        return Err(ApiError::InvalidBody {
            detail: "reason is a bulk-revoke field".into(),
            field: Some("reason".into()),
        });
    }
    let criteria = criteria(&body)?;
    let result = state.engine.renewals().renew_matching(criteria, body.dry_run, actor.0).await?;
    Ok(HttpResponse::Ok().json(json!({
        "total_matched": result.total_matched,
        "total_enqueued": result.total_done,
        "total_skipped": result.total_matched - result.total_done,
        "dry_run": body.dry_run,
    })))
}

/// `POST /api/v1/certificates/bulk-revoke` (admin): revokes every matching issued certificate.
#[tracing::instrument(skip_all)]
pub async fn bulk_revoke(
    state: web::Data<AppState>,
    _admin: Admin,
    actor: Actor,
    body: ValidJson<BulkBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let reason = reason(body.reason.as_deref(), "reason")?;
    let criteria = criteria(&body)?;
    let result = state.db.run(BulkRevoke { criteria, reason, dry_run: body.dry_run, actor: actor.0 }).await?;
    Ok(HttpResponse::Ok().json(json!({
        "total_matched": result.total_matched,
        "total_revoked": result.total_done,
        "total_skipped": result.total_matched - result.total_done,
        "reason": reason.as_str(),
        "dry_run": body.dry_run,
    })))
}
