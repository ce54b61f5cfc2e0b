//! `/api/v1/certificates`: create, list (keyset pages), get, update (partial) and archive managed
//! certificates, with certctl's paths and field names.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use certctl_actors::domain::certificate::{CertificatePatch, CertificateStatus, NewCertificate};
use certctl_actors::queries::certificate_list::{
    CertificateFilters, ListCertificates, Paging, Sort, SortCursor, SortKey, SortValue,
};
use certctl_actors::queries::certificates::{
    ArchiveCertificate, BulkReassign, CertificateTargets, ChangeOutcome, CreateCertificate, GetCertificate,
    UpdateCertificate,
};
use certctl_actors::queries::versions::ListVersions;

use crate::auth::Caller;
use crate::http::actor::Actor;
use crate::http::audit_read::audit_read;
use crate::http::cursor;
use crate::http::etag::{self, revalidate, Revalidation};
use crate::http::json::ValidJson;
use crate::http::paging::{rfc3339, PageRequest};
use crate::http::path_id::Id;
use crate::http::problem::{ApiError, Conflict};
use crate::http::query::{ListQuery, NoParams, QueryFields};
use crate::http::sparse::{FieldSet, Sparse};
use crate::http::AppState;
use certctl_actors::domain::validation::{is_valid_id, Violations};
use certctl_actors::etag_cache::Table;

/// Query parameters of the list endpoint besides paging.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    status: Option<String>,
    environment: Option<String>,
    owner_id: Option<String>,
    team_id: Option<String>,
    issuer_id: Option<String>,
    profile_id: Option<String>,
    expires_before: Option<String>,
    expires_after: Option<String>,
    updated_after: Option<String>,
    /// Prefix of the name or common name.
    q: Option<String>,
    /// `created_at` (default), `updated_at`, `expires_at`, `name`; `-` prefix for descending.
    sort: Option<String>,
    /// Sparse fieldset: `fields=id,name,status`.
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
#[tracing::instrument(skip_all)]
pub async fn create(
    state: web::Data<AppState>,
    actor: Actor,
    body: ValidJson<NewCertificate>,
) -> Result<HttpResponse, ApiError> {
    let mut new = body.0;
    new.normalize();
    new.validate(&state.environments).map_err(ApiError::Validation)?;
    let created = state.engine.certificates().create(CreateCertificate { new, actor: actor.0 }).await?;
    tracing::info!(certificate_id = %created.id, "certificate created");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/certificates/{}", created.id)))
        .json(created))
}

/// `GET /api/v1/certificates`: filters, sort, keyset pages (default) or certctl's offset pages.
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
    let result = state.db.run(ListCertificates { filters, sort, paging, with_total: request.with_total() }).await?;
    let details = serde_json::json!({ "query": raw });
    audit_read(&state, actor.0, "certificate", "list", "*", details).await?;

    let next_cursor = result.next.as_ref().map(|c| cursor::encode(state.engine.cursors(), LIST, c));
    let mut ok = HttpResponse::Ok();
    etag::headers(&mut ok, &etag);
    let response = match fields {
        Some(set) => {
            let data: Vec<Sparse> = result.items.iter().map(|c| Sparse(c, set)).collect();
            ok.json(request.page(data, next_cursor, result.total))
        }
        None => ok.json(request.page(result.items, next_cursor, result.total)),
    };
    Ok(response)
}

/// `GET /api/v1/certificates/{id}`.
#[tracing::instrument(skip_all, fields(certificate_id))]
pub async fn get(state: web::Data<AppState>, actor: Actor, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    tracing::Span::current().record("certificate_id", id.as_str());
    let certificate = state.db.run(GetCertificate { id: id.clone() }).await?.ok_or_else(|| not_found(&id))?;
    audit_read(&state, actor.0, "certificate", "read", &id, serde_json::json!({})).await?;
    Ok(HttpResponse::Ok().json(certificate))
}

/// `PUT /api/v1/certificates/{id}`: partial update; absent fields keep their values.
#[tracing::instrument(skip_all, fields(certificate_id))]
pub async fn update(
    state: web::Data<AppState>,
    actor: Actor,
    id: Id,
    body: ValidJson<CertificatePatch>,
) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    tracing::Span::current().record("certificate_id", id.as_str());
    let mut patch = body.0;
    patch.normalize();
    patch.validate(&state.environments).map_err(ApiError::Validation)?;
    if patch.is_empty() {
        return Err(ApiError::InvalidBody {
            detail: "the body changes nothing; send at least one field".into(),
            field: None,
        });
    }
    match state.db.run(UpdateCertificate { id: id.clone(), patch, actor: actor.0 }).await? {
        ChangeOutcome::Changed(certificate) => Ok(HttpResponse::Ok().json(certificate)),
        ChangeOutcome::NotFound => Err(not_found(&id)),
        ChangeOutcome::Archived => Err(ApiError::Conflict(
            Conflict::WrongState,
            format!("certificate {id} is archived and can no longer be changed"),
        )),
    }
}

/// `DELETE /api/v1/certificates/{id}`: archives the certificate (status `Archived`); 204.
#[tracing::instrument(skip_all, fields(certificate_id))]
pub async fn archive(state: web::Data<AppState>, actor: Actor, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    tracing::Span::current().record("certificate_id", id.as_str());
    match state.db.run(ArchiveCertificate { id: id.clone(), actor: actor.0 }).await? {
        ChangeOutcome::NotFound => Err(not_found(&id)),
        _ => {
            tracing::info!(certificate_id = %id, "certificate archived");
            Ok(HttpResponse::NoContent().finish())
        }
    }
}

/// `GET /api/v1/certificates/{id}/deployments`: the targets the certificate is bound to.
#[tracing::instrument(skip_all, fields(certificate_id))]
pub async fn deployments(state: web::Data<AppState>, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    tracing::Span::current().record("certificate_id", id.as_str());
    let targets =
        state.db.run(CertificateTargets { certificate_id: id.clone() }).await?.ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": targets })))
}

/// The body of `POST /api/v1/certificates/bulk-reassign` (certctl's shape).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkReassignBody {
    certificate_ids: Vec<String>,
    owner_id: String,
    #[serde(default)]
    team_id: Option<String>,
}

/// Largest number of ids one bulk request may name.
const MAX_BULK_IDS: usize = 10_000;

/// `POST /api/v1/certificates/bulk-reassign`: one statement for any number of ids; ids that match
/// nothing are listed in `errors`.
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
        .db
        .run(BulkReassign {
            certificate_ids: body.certificate_ids,
            owner_id: body.owner_id,
            team_id: body.team_id,
            actor: actor.0,
        })
        .await?;
    let errors: Vec<serde_json::Value> = result
        .not_found
        .iter()
        .map(|id| serde_json::json!({ "certificate_id": id, "error": "no certificate with this id" }))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "total_matched": result.total_matched,
        "total_reassigned": result.total_reassigned,
        "total_skipped": result.total_skipped,
        "total_failed": result.total_failed,
        "errors": errors,
    })))
}

/// `GET /api/v1/certificates/{id}/versions`: issued versions, newest first, in keyset pages.
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
    let page = state
        .db
        .run(ListVersions { certificate_id: id.clone(), before, limit })
        .await?
        .ok_or_else(|| not_found(&id))?;
    audit_read(&state, actor.0, "certificate", "read_versions", &id, serde_json::json!({})).await?;
    let next_cursor = page.next.map(|(t, id)| {
        cursor::encode(state.engine.cursors(), &list, &SortCursor { sort: order, value: SortValue::Time(t), id })
    });
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": page.items, "next_cursor": next_cursor, "limit": limit })))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no certificate with id {id}"))
}
