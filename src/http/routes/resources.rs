//! Generic REST handlers for the reference resources (`/api/v1/teams`, `/owners`,
//! `/renewal-policies`, `/issuers`, `/profiles`, `/targets`): list (keyset pages, filters from the resource, `q` name prefix), create,
//! get, update (partial) and delete. Deleting something still referenced is a 409; referring to
//! something missing a 422 naming the field.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use certctl_actors::domain::resources::issuer::normalize_type;
use certctl_actors::domain::resources::Resource;
use certctl_actors::queries::certificate_list::{Sort, SortCursor, SortValue};
use certctl_actors::queries::resources::{DeleteResource, GetResource, ListResources};

use crate::http::actor::Actor;
use crate::http::cursor;
use crate::http::json::ValidJson;
use crate::http::paging::PageRequest;
use crate::http::path_id::Id;
use crate::http::problem::{checked, ApiError};
use crate::http::query::{ListQuery, QueryFields};
use crate::http::route_table::{delete, post, put, read, Routes};
use crate::http::AppState;
use certctl_actors::inventory::AuditedRead;

/// Registers the five routes of resource `R` under `path` (e.g. `/teams`).
pub fn routes<R: Resource>(r: &mut Routes, path: &str) {
    r.at(path, [read(list::<R>), post(create::<R>)])
        .at(&format!("{path}/{{id}}"), [read(get::<R>), put(update::<R>), delete(delete_one::<R>)]);
}

fn not_found<R: Resource>(id: &str) -> ApiError {
    ApiError::NotFound(format!("no {} with id {id}", R::KIND.replace('_', " ")))
}

/// A resource list's own parameters: `q` and the resource's filters.
pub struct ResourceFilters<R>(BTreeMap<String, String>, PhantomData<R>);

impl<'de, R> serde::Deserialize<'de> for ResourceFilters<R> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(deserializer).map(|map| ResourceFilters(map, PhantomData))
    }
}

impl<R: Resource> QueryFields for ResourceFilters<R> {
    fn accepts(name: &str) -> bool {
        name == "q" || R::FILTERS.iter().any(|(filter, _)| *filter == name)
    }

    fn accepted() -> Vec<&'static str> {
        std::iter::once("q").chain(R::FILTERS.iter().map(|(name, _)| *name)).collect()
    }
}

/// `GET <path>?limit=&cursor=&q=&<filters>`: creation order, oldest first.
async fn list<R: Resource>(
    state: web::Data<AppState>,
    actor: Actor,
    query: ListQuery<ResourceFilters<R>>,
) -> Result<HttpResponse, ApiError> {
    let summary = serde_json::json!({ "query": &query.raw });
    let (request, params) = (query.paging, query.params.0);
    let mut filters = Vec::new();
    let mut name_prefix = None;
    for (key, value) in params {
        match key.as_str() {
            "q" => name_prefix = Some(value).filter(|v| !v.is_empty()),
            other => match R::FILTERS.iter().find(|(name, _)| *name == other) {
                // Types are stored lower-case; accept certctl's capitalised names in filters too.
                Some((_, "type")) => filters.push(("type", normalize_type(value))),
                Some((_, column)) => filters.push((*column, value)),
                None => {}
            },
        }
    }
    let after = match &request {
        PageRequest::Keyset { cursor: Some(c), .. } => {
            match cursor::decode(state.engine.cursors(), R::KIND, c, Sort::default())? {
                SortCursor { value: SortValue::Time(t), id, .. } => Some((t, id)),
                _ => return Err(ApiError::InvalidQuery("cursor is not for this list".into())),
            }
        }
        _ => None,
    };
    let query = ListResources::<R> {
        filters,
        name_prefix,
        after,
        offset: request.offset(),
        limit: request.size(),
        with_total: request.with_total(),
        kind: PhantomData,
    };
    let result = state
        .engine
        .inventory()
        .read(query, AuditedRead::of(actor.0, R::KIND, "list", "*").with_details(summary))
        .await?;
    let next_cursor = result.next.map(|(created_at, id)| {
        cursor::encode(
            state.engine.cursors(),
            R::KIND,
            &SortCursor { sort: Sort::default(), value: SortValue::Time(created_at), id },
        )
    });
    let body = request.page(result.items, next_cursor, result.total);
    Ok(HttpResponse::Ok().json(body))
}

/// `POST <path>`: 201 with the resource and its `Location`.
async fn create<R: Resource>(
    state: web::Data<AppState>,
    request: HttpRequest,
    actor: Actor,
    body: ValidJson<R::New>,
) -> Result<HttpResponse, ApiError> {
    let created: R = checked(state.engine.inventory().create::<R>(body.0, actor.0).await?)?;
    let location = format!("{}/{}", request.path().trim_end_matches('/'), created.id());
    Ok(HttpResponse::Created().insert_header((header::LOCATION, location)).json(created))
}

/// `GET <path>/{id}`.
async fn get<R: Resource>(state: web::Data<AppState>, actor: Actor, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    let read = AuditedRead::of(actor.0, R::KIND, "read", &id);
    let resource = state
        .engine
        .inventory()
        .read_one(GetResource::<R>::new(id.clone()), read)
        .await?
        .ok_or_else(|| not_found::<R>(&id))?;
    Ok(HttpResponse::Ok().json(resource))
}

/// `PUT <path>/{id}`: partial update; absent fields keep their values.
async fn update<R: Resource>(
    state: web::Data<AppState>,
    actor: Actor,
    id: Id,
    body: ValidJson<R::Patch>,
) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    let updated = state.engine.inventory().update::<R>(id.clone(), body.0, actor.0).await?;
    match checked(updated)? {
        Some(resource) => Ok(HttpResponse::Ok().json(resource)),
        None => Err(not_found::<R>(&id)),
    }
}

/// `DELETE <path>/{id}`: 204; 409 while other resources still reference it.
async fn delete_one<R: Resource>(state: web::Data<AppState>, actor: Actor, id: Id) -> Result<HttpResponse, ApiError> {
    let id = id.0;
    if state.db().run(DeleteResource::<R> { id: id.clone(), actor: actor.0, kind: PhantomData }).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(not_found::<R>(&id))
    }
}
