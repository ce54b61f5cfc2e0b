//! Certificate operations: `POST /api/v1/certificates/{id}/renew`, `/revoke`,
//! `GET /{id}/export/pem`, and the admin bulk operations `bulk-renew` and `bulk-revoke`.

use std::borrow::Cow;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Schema};
use utoipa::openapi::{RefOr, Required, Type};

use certctl_actors::domain::job::Job;
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
use crate::http::problem::{ApiError, Conflict, Problem};
use crate::http::AppState;

/// Largest number of explicit ids one bulk request may name (criteria match any number).
const MAX_BULK_IDS: usize = 10_000;

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no certificate with id {id}"))
}

/// An RFC 5280 revocation reason by its RFC name, for the OpenAPI document (requests may also
/// spell it in another case or with `_`/`-`, e.g. `key_compromise`).
pub struct RevocationReasonName;

impl utoipa::PartialSchema for RevocationReasonName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(RevocationReason::ALL.iter().map(|r| r.as_str())))
            .description(Some("An RFC 5280 revocation reason (§5.3.1), by its RFC name."))
            .into()
    }
}

impl utoipa::ToSchema for RevocationReasonName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("RevocationReason")
    }
}

/// `POST /api/v1/certificates/{id}/renew`: 202 with the job; 409 when one is already active.
#[utoipa::path(
    post,
    path = "/api/v1/certificates/{id}/renew",
    tag = "certificates",
    operation_id = "renewCertificate",
    params(("id" = String, Path, description = "The certificate's id.")),
    responses(
        (status = 202, description = "A renewal job was queued; `Location` names it.", body = Job,
            headers(("Location" = String, description = "`/api/v1/jobs/{job id}`"))),
        (status = 404, description = "No certificate has this id (`not-found`).", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "The certificate is archived or revoked (`wrong-state`), or already has an active \
            issuance or renewal (`renewal-active`).", content_type = "application/problem+json", body = Problem),
    )
)]
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

/// The (optional) body of `POST /api/v1/certificates/{id}/revoke`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// An RFC 5280 reason name; `unspecified` when absent.
    #[serde(default)]
    #[schema(value_type = Option<RevocationReasonName>)]
    reason: Option<String>,
}

/// What `POST /api/v1/certificates/{id}/revoke` did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Revoked {
    /// The certificate's id.
    pub certificate_id: String,
    /// The serial number of the revoked (current) version.
    pub serial_number: String,
    /// The reason recorded.
    #[schema(value_type = RevocationReasonName)]
    pub reason: &'static str,
    /// When it was revoked.
    pub revoked_at: DateTime<Utc>,
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
#[utoipa::path(
    post,
    path = "/api/v1/certificates/{id}/revoke",
    tag = "certificates",
    operation_id = "revokeCertificate",
    params(("id" = String, Path, description = "The certificate's id.")),
    request_body(content = RevokeBody, description = "Optional: without a body the reason is `unspecified`.",
        content_type = "application/json"),
    responses(
        (status = 200, description = "The certificate is revoked.", body = Revoked),
        (status = 404, description = "No certificate has this id (`not-found`).", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "The certificate was never issued, or is already revoked or archived (`wrong-state`).", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "`reason` is not an RFC 5280 reason name (`validation-failed`).", content_type = "application/problem+json", body = Problem),
    )
)]
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
    match state.db().run(RevokeCertificate { certificate_id: id.clone(), reason, actor: actor.0 }).await? {
        RevokeOutcome::Revoked { serial_number, revoked_at } => Ok(HttpResponse::Ok().json(Revoked {
            certificate_id: id,
            serial_number,
            reason: reason.as_str(),
            revoked_at,
        })),
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
#[utoipa::path(
    get,
    path = "/api/v1/certificates/{id}/export/pem",
    tag = "certificates",
    operation_id = "exportCertificatePem",
    params(("id" = String, Path, description = "The certificate's id.")),
    responses(
        (status = 200, description = "The current version's chain, leaf first, as PEM.",
            content_type = "application/x-pem-file", body = String,
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"<name>.pem\"` (the certificate's \
                name, characters other than letters, digits, `-`, `_` and `.` replaced by `_`)."))),
        (status = 404, description = "No certificate has this id (`not-found`).", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "The certificate has no issued version yet (`wrong-state`).", content_type = "application/problem+json", body = Problem),
    )
)]
#[tracing::instrument(skip_all, fields(certificate_id))]
pub async fn export_pem(state: web::Data<AppState>, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    tracing::Span::current().record("certificate_id", id.as_str());
    let (name, chain) =
        state.db().run(CurrentChain { certificate_id: id.clone() }).await?.ok_or_else(|| not_found(&id))?;
    // The certificate exists; what it lacks is a version: a state, not a missing resource.
    let chain = chain.ok_or_else(|| {
        ApiError::Conflict(Conflict::WrongState, format!("certificate {id} has no issued version yet"))
    })?;
    let file: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    Ok(HttpResponse::Ok()
        .content_type("application/x-pem-file")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}.pem\"")))
        .body(chain))
}

/// The criteria of both bulk operations (certctl's field names). At least one criterion is
/// needed; a certificate must match all that are given.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    /// Certificates with this certificate profile.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
    profile_id: Option<String>,
    /// Certificates of this owner.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
    owner_id: Option<String>,
    /// Certificates of this team.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
    team_id: Option<String>,
    /// Certificates from this issuer.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
    issuer_id: Option<String>,
    /// Certificates bound to a deployment target of this agent.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
    agent_id: Option<String>,
    /// These certificates (1 to 10,000 ids).
    #[serde(default)]
    #[schema(min_items = 1, max_items = 10000)]
    certificate_ids: Option<Vec<String>>,
    /// Certificates expiring before this time (RFC 3339).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    expiring_before: Option<String>,
    /// Only count what would be done.
    #[serde(default)]
    dry_run: bool,
    /// bulk-revoke only: the RFC 5280 reason (`unspecified` when absent). bulk-renew refuses it.
    #[serde(default)]
    #[schema(value_type = Option<RevocationReasonName>)]
    reason: Option<String>,
}

/// The body of `POST /api/v1/certificates/bulk-renew`, for the OpenAPI document: [`BulkBody`]
/// without `reason` (which bulk-renew refuses).
pub struct BulkRenewBody;

impl utoipa::PartialSchema for BulkRenewBody {
    fn schema() -> RefOr<Schema> {
        let mut schema = <BulkBody as utoipa::PartialSchema>::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            object.properties.shift_remove("reason");
        }
        schema
    }
}

impl utoipa::ToSchema for BulkRenewBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("BulkRenewBody")
    }
}

/// What `POST /api/v1/certificates/bulk-renew` did (or, with `dry_run`, would do).
#[derive(Serialize, utoipa::ToSchema)]
pub struct BulkRenewed {
    /// Certificates matching the criteria.
    pub total_matched: i64,
    /// Renewals queued (with `dry_run`: that would be queued).
    pub total_enqueued: i64,
    /// Matches not renewed (archived, revoked, or with an active renewal).
    pub total_skipped: i64,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// What `POST /api/v1/certificates/bulk-revoke` did (or, with `dry_run`, would do).
#[derive(Serialize, utoipa::ToSchema)]
pub struct BulkRevoked {
    /// Certificates matching the criteria.
    pub total_matched: i64,
    /// Certificates revoked (with `dry_run`: that would be revoked).
    pub total_revoked: i64,
    /// Matches not revoked (never issued, already revoked, or archived).
    pub total_skipped: i64,
    /// The reason recorded.
    #[schema(value_type = RevocationReasonName)]
    pub reason: &'static str,
    /// Whether this was a dry run.
    pub dry_run: bool,
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
#[utoipa::path(
    post,
    path = "/api/v1/certificates/bulk-renew",
    tag = "certificates",
    operation_id = "bulkRenewCertificates",
    request_body = BulkRenewBody,
    responses(
        (status = 200, description = "Renewals queued for the matching certificates (counted only with `dry_run`).",
            body = BulkRenewed),
        (status = 400, description = "The body is malformed, or names `reason` (`invalid-body`, `malformed-json`).", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not an admin key (`forbidden`).", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "No criterion, a malformed id or time, or too many ids (`validation-failed`).", content_type = "application/problem+json", body = Problem),
    )
)]
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
    Ok(HttpResponse::Ok().json(BulkRenewed {
        total_matched: result.total_matched,
        total_enqueued: result.total_done,
        total_skipped: result.total_matched - result.total_done,
        dry_run: body.dry_run,
    }))
}

/// `POST /api/v1/certificates/bulk-revoke` (admin): revokes every matching issued certificate.
#[utoipa::path(
    post,
    path = "/api/v1/certificates/bulk-revoke",
    tag = "certificates",
    operation_id = "bulkRevokeCertificates",
    request_body = BulkBody,
    responses(
        (status = 200, description = "The matching issued certificates are revoked (counted only with `dry_run`).",
            body = BulkRevoked),
        (status = 403, description = "Not an admin key (`forbidden`).", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "No criterion, a malformed id or time, too many ids, or an unknown `reason` \
            (`validation-failed`).", content_type = "application/problem+json", body = Problem),
    )
)]
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
    let result = state.db().run(BulkRevoke { criteria, reason, dry_run: body.dry_run, actor: actor.0 }).await?;
    Ok(HttpResponse::Ok().json(BulkRevoked {
        total_matched: result.total_matched,
        total_revoked: result.total_done,
        total_skipped: result.total_matched - result.total_done,
        reason: reason.as_str(),
        dry_run: body.dry_run,
    }))
}

/// This file's operations, for the OpenAPI document (`http::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(renew, revoke, export_pem, bulk_renew, bulk_revoke), modifiers(&OptionalRevokeBody))]
pub struct Doc;

/// The revoke body may be left out (`OptionalJson`): its request body is not required.
struct OptionalRevokeBody;

impl utoipa::Modify for OptionalRevokeBody {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let item = openapi.paths.paths.get_mut("/api/v1/certificates/{id}/revoke");
        if let Some(RefOr::T(body)) = item.and_then(|i| i.post.as_mut()).and_then(|op| op.request_body.as_mut()) {
            body.required = Some(Required::False);
        }
    }
}
