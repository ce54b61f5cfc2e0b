//! `/api/v1/certificates`: create, list (keyset pages), get, update (partial) and archive managed
//! certificates, with certctl's paths and field names.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use certctl_actors::domain::certificate::{Certificate, CertificatePatch, CertificateStatus, NewCertificate};
use certctl_actors::domain::resources::target::Target;
use certctl_actors::domain::version::CertificateVersion;
use certctl_actors::queries::certificate_list::{
    CertificateFilters, ListCertificates, Paging, Sort, SortCursor, SortKey, SortValue,
};
use certctl_actors::queries::certificates::{
    ArchiveCertificate, BulkReassign, CertificateTargets, ChangeOutcome, GetCertificate,
};
use certctl_actors::queries::versions::ListVersions;

use crate::auth::Caller;
use crate::http::actor::Actor;
use crate::http::cursor;
use crate::http::etag::{self, revalidate, Revalidation};
use crate::http::json::ValidJson;
use crate::http::paging::{rfc3339, Page, PageRequest, PagingParams};
use crate::http::path_id::Id;
use crate::http::problem::{checked, ApiError, Conflict, Problem};
use crate::http::query::{ListQuery, NoParams, QueryFields};
use crate::http::sparse::{CertificateListItem, FieldSet, Sparse};
use crate::http::AppState;
use certctl_actors::domain::validation::{is_valid_id, Violations};
use certctl_actors::etag_cache::Table;
use certctl_actors::inventory::AuditedRead;

/// Query parameters of the list endpoint besides paging.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only certificates in this status.
    #[param(inline, value_type = Option<CertificateStatus>)]
    status: Option<String>,
    /// Only certificates of this environment.
    environment: Option<String>,
    /// Only certificates of this owner.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
    owner_id: Option<String>,
    /// Only certificates of this team.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
    team_id: Option<String>,
    /// Only certificates from this issuer.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
    issuer_id: Option<String>,
    /// Only certificates with this certificate profile.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
    profile_id: Option<String>,
    /// Only certificates expiring before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    expires_before: Option<String>,
    /// Only certificates expiring after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    expires_after: Option<String>,
    /// Only certificates changed after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    updated_after: Option<String>,
    /// Prefix of the name or common name.
    q: Option<String>,
    /// `created_at` (default), `updated_at`, `expires_at`, `name` (certctl's `createdAt`,
    /// `updatedAt`, `expiresAt`, `notAfter` too); `-` prefix for descending.
    #[param(pattern = "^-?(created_at|updated_at|expires_at|name|createdAt|updatedAt|expiresAt|notAfter)$")]
    sort: Option<String>,
    /// Sparse fieldset: a comma-separated list of certificate properties (`fields=id,name,status`);
    /// each row then carries only those.
    #[param(
        pattern = "^(id|name|common_name|sans|environment|owner_id|team_id|issuer_id|renewal_policy_id|certificate_profile_id|status|expires_at|tags|target_ids|last_renewal_at|last_deployment_at|revoked_at|revocation_reason|source|created_at|updated_at)(,(id|name|common_name|sans|environment|owner_id|team_id|issuer_id|renewal_policy_id|certificate_profile_id|status|expires_at|tags|target_ids|last_renewal_at|last_deployment_at|revoked_at|revocation_reason|source|created_at|updated_at))*$"
    )]
    fields: Option<String>,
}

impl QueryFields for ListParams {
    const FIELDS: &'static [&'static str] = &[
        "status",
        "environment",
        "owner_id",
        "team_id",
        "issuer_id",
        "profile_id",
        "expires_before",
        "expires_after",
        "updated_after",
        "q",
        "sort",
        "fields",
    ];
}

/// The certificate list's name for its cursors.
const LIST: &str = "/api/v1/certificates";

fn id_filter(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if !is_valid_id(&v) => Err(ApiError::InvalidQuery(format!("{name} is not a valid id"))),
        other => Ok(other),
    }
}

/// Parses `sort` (certctl's camelCase names are accepted too).
fn parse_sort(value: Option<&str>) -> Result<Sort, ApiError> {
    let Some(value) = value else { return Ok(Sort::default()) };
    let (descending, name) = match value.strip_prefix('-') {
        Some(name) => (true, name),
        None => (false, value),
    };
    let key = match name {
        "created_at" | "createdAt" => SortKey::CreatedAt,
        "updated_at" | "updatedAt" => SortKey::UpdatedAt,
        "expires_at" | "expiresAt" | "notAfter" => SortKey::ExpiresAt,
        "name" => SortKey::Name,
        _ => {
            return Err(ApiError::InvalidQuery(
                "sort must be one of created_at, updated_at, expires_at, name (prefix - for descending)".into(),
            ))
        }
    };
    Ok(Sort { key, descending })
}

/// `POST /api/v1/certificates`: 201 with the stored certificate and its `Location`.
#[utoipa::path(
    post,
    path = "/api/v1/certificates",
    tag = "certificates",
    operation_id = "createCertificate",
    request_body = NewCertificate,
    responses(
        (status = 201, description = "The certificate as stored (status `Pending`); `Location` names it.", body = Certificate,
            headers(("Location" = String, description = "`/api/v1/certificates/{id}`"))),
        (status = 409, description = "The id or the name is taken (`already-exists`).", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "Invalid fields, or a reference (owner, team, issuer, renewal policy, profile, \
            target) to something missing (`validation-failed`).", content_type = "application/problem+json", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn create(
    state: web::Data<AppState>,
    actor: Actor,
    body: ValidJson<NewCertificate>,
) -> Result<HttpResponse, ApiError> {
    let created: Certificate = checked(state.engine.inventory().create_certificate(body.0, actor.0).await?)?;
    tracing::info!(certificate_id = %created.id, "certificate created");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/certificates/{}", created.id)))
        .json(created))
}

/// `GET /api/v1/certificates`: filters, sort, keyset pages (default) or certctl's offset pages.
#[utoipa::path(
    get,
    path = "/api/v1/certificates",
    tag = "certificates",
    operation_id = "listCertificates",
    params(
        PagingParams,
        ListParams,
    ),
    responses(
        (status = 200, description = "A page of certificates (keyset: `data`, `next_cursor`, `limit`[, `total`]; \
            offset: `data`, `total`, `page`, `per_page`). With `fields=`, each row has only the named properties.",
            body = Page<CertificateListItem<'static>>),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    actor: Actor,
    query: ListQuery<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let (request, p, raw) = (query.paging, query.params, query.raw);
    let status = p
        .status
        .as_deref()
        .map(|s| {
            CertificateStatus::parse(s).ok_or_else(|| {
                let accepted: Vec<&str> = CertificateStatus::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::InvalidQuery(format!("status must be one of {}", accepted.join(", ")))
            })
        })
        .transpose()?;
    let filters = CertificateFilters {
        status,
        environment: p.environment.clone(),
        owner_id: id_filter("owner_id", p.owner_id.clone())?,
        team_id: id_filter("team_id", p.team_id.clone())?,
        issuer_id: id_filter("issuer_id", p.issuer_id.clone())?,
        profile_id: id_filter("profile_id", p.profile_id.clone())?,
        expires_before: rfc3339("expires_before", p.expires_before.as_deref())?,
        expires_after: rfc3339("expires_after", p.expires_after.as_deref())?,
        updated_after: rfc3339("updated_after", p.updated_after.as_deref())?,
        q: p.q.clone().filter(|q| !q.is_empty()),
    };
    let sort = parse_sort(p.sort.as_deref())?;
    let fields = p.fields.as_deref().map(FieldSet::parse).transpose()?;
    let paging = match &request {
        PageRequest::Keyset { limit, cursor, .. } => Paging::Keyset {
            after: cursor.as_deref().map(|c| cursor::decode(state.engine.cursors(), LIST, c, sort)).transpose()?,
            limit: *limit,
        },
        PageRequest::Offset { .. } => Paging::Offset { offset: request.offset().unwrap_or(0), limit: request.size() },
    };
    let etag = match revalidate(
        &req,
        &state,
        &caller,
        "/api/v1/certificates",
        &[Table::Certificates, Table::TargetMappings],
    ) {
        Revalidation::NotModified(response) => return Ok(response),
        Revalidation::Fresh(etag) => etag,
    };
    let query = ListCertificates { filters, sort, paging, with_total: request.with_total() };
    let read = AuditedRead::of(actor.0, "certificate", "list", "*").with_details(serde_json::json!({ "query": raw }));
    let result = state.engine.inventory().read(query, read).await?;

    let next_cursor = result.next.as_ref().map(|c| cursor::encode(state.engine.cursors(), LIST, c));
    let mut ok = HttpResponse::Ok();
    etag::headers(&mut ok, &etag);
    let data: Vec<CertificateListItem> = match fields {
        Some(set) => result.items.iter().map(|c| CertificateListItem::Sparse(Sparse(c, set))).collect(),
        None => result.items.iter().map(CertificateListItem::Full).collect(),
    };
    Ok(ok.json(request.page(data, next_cursor, result.total)))
}

/// `GET /api/v1/certificates/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/certificates/{id}",
    tag = "certificates",
    operation_id = "getCertificate",
    params(("id" = String, Path, description = "The certificate's id.")),
    responses(
        (status = 200, description = "The certificate.", body = Certificate),
        (status = 404, description = "No certificate has this id (`not-found`).", content_type = "application/problem+json", body = Problem),
    )
)]
#[tracing::instrument(skip_all, fields(certificate_id))]
pub async fn get(state: web::Data<AppState>, actor: Actor, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    tracing::Span::current().record("certificate_id", id.as_str());
    let read = AuditedRead::of(actor.0, "certificate", "read", &id);
    let certificate = state
        .engine
        .inventory()
        .read_one(GetCertificate { id: id.clone() }, read)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(certificate))
}

/// `PUT /api/v1/certificates/{id}`: partial update; absent fields keep their values.
#[utoipa::path(
    put,
    path = "/api/v1/certificates/{id}",
    tag = "certificates",
    operation_id = "updateCertificate",
    params(("id" = String, Path, description = "The certificate's id.")),
    request_body(content = CertificatePatch, description = "The fields to change (at least one); absent fields keep their values.",
        content_type = "application/json"),
    responses(
        (status = 200, description = "The certificate as stored.", body = Certificate),
        (status = 400, description = "The body is malformed, or changes nothing (`invalid-body`); or the path or a value \
            is malformed (`invalid-path`, `malformed-json`, `invalid-value`).", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No certificate has this id (`not-found`).", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "The certificate is archived (`wrong-state`), or the new name is taken (`already-exists`).", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "Invalid fields, or a reference to something missing (`validation-failed`).", content_type = "application/problem+json", body = Problem),
    )
)]
#[tracing::instrument(skip_all, fields(certificate_id))]
pub async fn update(
    state: web::Data<AppState>,
    actor: Actor,
    id: Id,
    body: ValidJson<CertificatePatch>,
) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    tracing::Span::current().record("certificate_id", id.as_str());
    let outcome = state.engine.inventory().update_certificate(id.clone(), body.0, actor.0).await?;
    match checked(outcome)? {
        ChangeOutcome::Changed(certificate) => Ok(HttpResponse::Ok().json(certificate)),
        ChangeOutcome::NotFound => Err(not_found(&id)),
        ChangeOutcome::Archived => Err(ApiError::Conflict(
            Conflict::WrongState,
            format!("certificate {id} is archived and can no longer be changed"),
        )),
    }
}

/// `DELETE /api/v1/certificates/{id}`: archives the certificate (status `Archived`); 204.
#[utoipa::path(
    delete,
    path = "/api/v1/certificates/{id}",
    tag = "certificates",
    operation_id = "archiveCertificate",
    params(("id" = String, Path, description = "The certificate's id.")),
    responses(
        (status = 204, description = "Archived (status `Archived`), or it already was."),
        (status = 404, description = "No certificate has this id (`not-found`).", content_type = "application/problem+json", body = Problem),
    )
)]
#[tracing::instrument(skip_all, fields(certificate_id))]
pub async fn archive(state: web::Data<AppState>, actor: Actor, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    tracing::Span::current().record("certificate_id", id.as_str());
    match state.db().run(ArchiveCertificate { id: id.clone(), actor: actor.0 }).await? {
        ChangeOutcome::NotFound => Err(not_found(&id)),
        _ => {
            tracing::info!(certificate_id = %id, "certificate archived");
            Ok(HttpResponse::NoContent().finish())
        }
    }
}

/// The answer of `GET /api/v1/certificates/{id}/deployments`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CertificateDeployments {
    /// The deployment targets the certificate is bound to, by id.
    pub data: Vec<Target>,
}

/// `GET /api/v1/certificates/{id}/deployments`: the targets the certificate is bound to.
#[utoipa::path(
    get,
    path = "/api/v1/certificates/{id}/deployments",
    tag = "certificates",
    operation_id = "listCertificateDeployments",
    params(("id" = String, Path, description = "The certificate's id.")),
    responses(
        (status = 200, description = "Every target the certificate is bound to (not paged).", body = CertificateDeployments),
        (status = 404, description = "No certificate has this id (`not-found`).", content_type = "application/problem+json", body = Problem),
    )
)]
#[tracing::instrument(skip_all, fields(certificate_id))]
pub async fn deployments(state: web::Data<AppState>, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    tracing::Span::current().record("certificate_id", id.as_str());
    let targets =
        state.db().run(CertificateTargets { certificate_id: id.clone() }).await?.ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(CertificateDeployments { data: targets }))
}

/// The body of `POST /api/v1/certificates/bulk-reassign` (certctl's shape).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkReassignBody {
    /// The certificates to reassign (1 to 10,000 ids).
    certificate_ids: Vec<String>,
    /// Their new owner.
    owner_id: String,
    /// Their new team; unchanged when absent.
    #[serde(default)]
    team_id: Option<String>,
}

/// What `POST /api/v1/certificates/bulk-reassign` did (certctl's result fields).
#[derive(Serialize, utoipa::ToSchema)]
pub struct BulkReassignResponse {
    /// Certificates the ids named.
    pub total_matched: i64,
    /// Certificates reassigned.
    pub total_reassigned: i64,
    /// Certificates left as they were (archived, or already so assigned).
    pub total_skipped: i64,
    /// Ids that could not be reassigned (those in `errors`).
    pub total_failed: i64,
    /// One entry per id that matched no certificate.
    pub errors: Vec<BulkReassignError>,
}

/// An id `bulk-reassign` could not reassign.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BulkReassignError {
    /// The id as sent.
    pub certificate_id: String,
    /// Why: `no certificate with this id`.
    pub error: &'static str,
}

/// Largest number of ids one bulk request may name.
const MAX_BULK_IDS: usize = 10_000;

/// `POST /api/v1/certificates/bulk-reassign`: one statement for any number of ids; ids that match
/// nothing are listed in `errors`.
#[utoipa::path(
    post,
    path = "/api/v1/certificates/bulk-reassign",
    tag = "certificates",
    operation_id = "bulkReassignCertificates",
    request_body = BulkReassignBody,
    responses(
        (status = 200, description = "What was reassigned; ids that match no certificate are listed in `errors`.",
            body = BulkReassignResponse),
        (status = 422, description = "No ids or more than 10,000, a malformed id, or an owner or team that does not \
            exist (`validation-failed`).", content_type = "application/problem+json", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn bulk_reassign(
    state: web::Data<AppState>,
    actor: Actor,
    body: ValidJson<BulkReassignBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let mut v = Violations::default();
    if body.certificate_ids.is_empty() || body.certificate_ids.len() > MAX_BULK_IDS {
        v.add("certificate_ids", format!("must list 1 to {MAX_BULK_IDS} ids"));
    }
    for (i, id) in body.certificate_ids.iter().enumerate().take(MAX_BULK_IDS) {
        v.id(&format!("certificate_ids[{i}]"), id);
    }
    v.id("owner_id", &body.owner_id);
    if let Some(team) = &body.team_id {
        v.id("team_id", team);
    }
    v.into_result().map_err(ApiError::Validation)?;
    let result = state
        .db()
        .run(BulkReassign {
            certificate_ids: body.certificate_ids,
            owner_id: body.owner_id,
            team_id: body.team_id,
            actor: actor.0,
        })
        .await?;
    let errors = result
        .not_found
        .into_iter()
        .map(|certificate_id| BulkReassignError { certificate_id, error: "no certificate with this id" })
        .collect();
    Ok(HttpResponse::Ok().json(BulkReassignResponse {
        total_matched: result.total_matched,
        total_reassigned: result.total_reassigned,
        total_skipped: result.total_skipped,
        total_failed: result.total_failed,
        errors,
    }))
}

/// The answer of `GET /api/v1/certificates/{id}/versions`: one keyset page.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VersionPage {
    /// The issued versions, newest first.
    pub data: Vec<CertificateVersion>,
    /// The next page's cursor, `null` on the last page.
    pub next_cursor: Option<String>,
    /// Rows per page.
    pub limit: i64,
}

/// `GET /api/v1/certificates/{id}/versions`: issued versions, newest first, in keyset pages.
#[utoipa::path(
    get,
    path = "/api/v1/certificates/{id}/versions",
    tag = "certificates",
    operation_id = "listCertificateVersions",
    params(
        ("id" = String, Path, description = "The certificate's id."),
        ("limit" = Option<i64>, Query, description = "Rows per page (default 50).", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page."),
    ),
    responses(
        (status = 200, description = "A page of issued versions, newest first (keyset pages only: `page`, `per_page` \
            and `include_total=true` are refused with 400).", body = VersionPage),
        (status = 404, description = "No certificate has this id (`not-found`).", content_type = "application/problem+json", body = Problem),
    )
)]
#[tracing::instrument(skip_all, fields(certificate_id))]
pub async fn versions(
    state: web::Data<AppState>,
    actor: Actor,
    id: Id,
    query: ListQuery<NoParams>,
) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    tracing::Span::current().record("certificate_id", id.as_str());
    let (limit, cursor_value) = match query.paging {
        PageRequest::Keyset { limit, cursor, include_total: false } => (limit, cursor),
        _ => return Err(ApiError::InvalidQuery("versions are paged with limit and cursor only".into())),
    };
    let order = Sort { key: SortKey::CreatedAt, descending: true };
    let list = format!("versions:{id}");
    let before =
        match cursor_value.as_deref().map(|c| cursor::decode(state.engine.cursors(), &list, c, order)).transpose()? {
            Some(SortCursor { value: SortValue::Time(t), id, .. }) => Some((t, id)),
            Some(_) => return Err(ApiError::InvalidQuery("cursor is not for this list".into())),
            None => None,
        };
    let read = AuditedRead::of(actor.0, "certificate", "read_versions", &id);
    let query = ListVersions { certificate_id: id.clone(), before, limit };
    let page = state.engine.inventory().read_one(query, read).await?.ok_or_else(|| not_found(&id))?;
    let next_cursor = page.next.map(|(t, id)| {
        cursor::encode(state.engine.cursors(), &list, &SortCursor { sort: order, value: SortValue::Time(t), id })
    });
    Ok(HttpResponse::Ok().json(VersionPage { data: page.items, next_cursor, limit }))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no certificate with id {id}"))
}

/// This file's operations, for the OpenAPI document (`http::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, create, bulk_reassign, get, update, archive, deployments, versions))]
pub struct Doc;
