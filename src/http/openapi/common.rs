//! What every operation shares, added to the document in one place rather than on fifty
//! handlers: the bearer key and the 401/403 of `require_api_key`, the 400/408/413/415 of the body
//! extractor (`ValidJson`), the 414/431 problems below the HTTP layer, the 404 of an unknown id,
//! and the 500/503 any database call can end in; and the path ids get the pattern their
//! extractor checks; the revalidating lists their `If-None-Match`, `ETag` and 304. Each is a problem document
//! (`application/problem+json`, schema `Problem`), declared once under `components/responses`.
//! A status a handler already documents keeps the handler's own description.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType};

use crate::http::etag::REVALIDATED_LISTS;
use crate::http::path_id::{ID_PATTERN, ID_SEGMENTS};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Components, ContentBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder, Type};

/// The name of the security scheme (an API key sent as a bearer token).
const BEARER: &str = "bearerKey";

/// Routes under `/api/v1` that need no key.
const PUBLIC: &[&str] = &["/api/v1/version", "/api/v1/auth/info", "/api/v1/openapi.json", "/api/v1/docs"];

/// Routes that answer from memory, so a database fault cannot reach them.
const NO_DATABASE: &[&str] = &[
    "/health",
    "/metrics",
    "/api/v1/version",
    "/api/v1/auth/info",
    "/api/v1/auth/check",
    "/api/v1/admin/config",
    "/api/v1/openapi.json",
    "/api/v1/docs",
];

/// The shared responses: (component name, status, description).
const RESPONSES: &[(&str, &str, &str)] = &[
    ("BadRequest", "400", "The query, a path segment or the body is malformed (problem types `invalid-query`, `invalid-path`, `malformed-json`, `invalid-body`, `invalid-value`)."),
    ("Unauthorized", "401", "No key, an unknown key, or two `Authorization` headers (`unauthorized`)."),
    ("Forbidden", "403", "The key's role does not reach this route (`forbidden`); see docs/api.md, Permissions."),
    ("NotFound", "404", "No resource has this id (`not-found`)."),
    ("RequestTimeout", "408", "The body did not arrive within `CERTCTL_REQUEST_BODY_TIMEOUT` (`request-timeout`)."),
    ("PayloadTooLarge", "413", "The body is larger than `CERTCTL_MAX_BODY_SIZE` (`payload-too-large`)."),
    ("UriTooLong", "414", "The request target is too long (`uri-too-long`)."),
    ("UnsupportedMediaType", "415", "The body is not sent as `application/json` (`unsupported-media-type`)."),
    ("HeadersTooLarge", "431", "The request headers are too large (`headers-too-large`)."),
    ("Internal", "500", "Something unexpected failed; the server log has the cause under the request id (`internal-error`)."),
    ("Unavailable", "503", "The database cannot be reached or is overloaded; retry after `Retry-After` seconds (`service-unavailable`)."),
];

/// Adds the shared parts to a document whose operations are all in place.
pub struct Shared;

impl Shared {
    pub fn apply(doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Components::new);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`CERTCTL_API_KEYS_NAMED`, the generated admin key), an agent's key, or the \
                         agent bootstrap token (only for registering agents).",
                    ))
                    .build(),
            ),
        );
        for (name, _, description) in RESPONSES {
            let mut response = ResponseBuilder::new().description(*description).content(
                "application/problem+json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
            );
            if *name == "Unauthorized" {
                let header = HeaderBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .description(Some("`Bearer realm=\"certctl\"`"))
                    .build();
                response = response.header("WWW-Authenticate", header);
            }
            if *name == "Unavailable" {
                let header = HeaderBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                    .description(Some("Seconds to wait before trying again."))
                    .build();
                response = response.header("Retry-After", header);
            }
            components.responses.insert(name.to_string(), RefOr::T(response.build()));
        }
        creation_links(doc);
        for (path, item) in doc.paths.paths.iter_mut() {
            if let Some(list) = item.get.as_mut().filter(|_| REVALIDATED_LISTS.contains(&path.as_str())) {
                revalidation(list);
            }
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                id_patterns(operation);
                shared_responses(path, operation);
                summaries(operation);
            }
        }
    }
}

/// What a revalidating list (`http::etag`) adds: the `If-None-Match` parameter, the `ETag` and
/// `Cache-Control` of its 200, and the 304 that answers an unchanged list.
fn revalidation(list: &mut Operation) {
    let string = || Some(ObjectBuilder::new().schema_type(Type::String));
    let parameter = ParameterBuilder::new()
        .name("If-None-Match")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .schema(string())
        .description(Some("An `ETag` of an earlier answer (or `*`): 304 while the list is unchanged."))
        .build();
    list.parameters.get_or_insert_with(Vec::new).push(RefOr::T(parameter));
    let etag = |description: &str| HeaderBuilder::new().schema(string()).description(Some(description)).build();
    let cache_control = || HeaderBuilder::new().schema(string()).description(Some("`private, no-cache`")).build();
    if let Some(RefOr::T(ok)) = list.responses.responses.get_mut("200") {
        let description = "A weak ETag for `If-None-Match`; not sent while reads are audited or change \
                           notifications are not flowing (see docs/api.md, ETags).";
        ok.headers.insert("ETag".into(), RefOr::T(etag(description)));
        ok.headers.insert("Cache-Control".into(), RefOr::T(cache_control()));
    }
    let not_modified = ResponseBuilder::new()
        .description("Unchanged since the `ETag` named in `If-None-Match` (no body).")
        .header("ETag", etag("The current ETag."))
        .header("Cache-Control", cache_control());
    list.responses.responses.insert("304".into(), RefOr::T(not_modified.build()));
}

/// Every summary is the operation's id as words ("listCertificates": "List certificates"), short
/// and uniform in lists of operations; the handler's first doc paragraph, which utoipa made the
/// summary, opens the description instead.
fn summaries(operation: &mut Operation) {
    let first = operation.summary.take().and_then(|summary| plain_summary(&summary));
    operation.description = match (first, operation.description.take()) {
        (Some(first), Some(rest)) => Some(format!("{first}\n\n{rest}")),
        (first, rest) => first.or(rest),
    };
    operation.summary = operation.operation_id.as_deref().map(|id| {
        let mut words = String::new();
        for (i, c) in id.chars().enumerate() {
            match (i, c.is_ascii_uppercase()) {
                (0, _) => words.extend(c.to_uppercase()),
                (_, true) => {
                    words.push(' ');
                    words.push(c.to_ascii_lowercase());
                }
                _ => words.push(c),
            }
        }
        words
    });
}

/// A handler's first doc line without the method and path it opens with (the document shows
/// those already): "`GET /api/v1/auth/info` (public): which authentication the server expects."
/// becomes "Which authentication the server expects."; `None` when nothing else is left.
fn plain_summary(summary: &str) -> Option<String> {
    let rest = match summary.strip_prefix('`').and_then(|s| s.split_once('`')) {
        Some((route, rest)) if route.split(' ').next().is_some_and(|m| m.chars().all(|c| c.is_ascii_uppercase())) => {
            rest
        }
        _ => summary,
    };
    let rest = rest.trim_start().trim_start_matches("(public)").trim_start_matches("(admin)");
    let rest = rest.trim_start_matches([':', ',', '.']).trim();
    let mut chars = rest.chars();
    let first = chars.next()?;
    Some(first.to_uppercase().chain(chars).collect())
}

/// Gives the path ids (`http::path_id`) the pattern their extractor checks.
fn id_patterns(operation: &mut Operation) {
    for parameter in operation.parameters.iter_mut().flatten() {
        let RefOr::T(parameter) = parameter else { continue };
        if parameter.parameter_in != ParameterIn::Path || !ID_SEGMENTS.contains(&parameter.name.as_str()) {
            continue;
        }
        if let Some(RefOr::T(Schema::Object(object))) = &mut parameter.schema {
            if matches!(object.schema_type, SchemaType::Type(Type::String)) && object.pattern.is_none() {
                object.pattern = Some(ID_PATTERN.to_string());
            }
        }
    }
}

/// Adds to one operation the statuses it shares with others.
fn shared_responses(path: &str, operation: &mut Operation) {
    let public = !path.starts_with("/api/v1/") || PUBLIC.iter().any(|p| path.starts_with(p));
    let has_body = operation.request_body.is_some();
    let has_path_id = path.contains('{');
    let has_query =
        operation.parameters.iter().flatten().any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Query));
    let mut statuses: Vec<&str> = vec!["414", "431", "500"];
    if !public {
        operation.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
        statuses.extend(["401", "403"]);
    }
    if has_body {
        statuses.extend(["408", "413", "415"]);
    }
    if has_body || has_query || has_path_id {
        statuses.push("400");
    }
    if has_path_id {
        statuses.push("404");
    }
    if !NO_DATABASE.iter().any(|p| path.starts_with(p)) {
        statuses.push("503");
    }
    for status in statuses {
        let Some((name, _, _)) = RESPONSES.iter().find(|(_, s, _)| *s == status) else { continue };
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
    }
}

/// Links each creation (a `201` to `POST <P>`) to the operations on what it created: every
/// operation on `<P>/{id}` and on the paths just below it whose only parameter is that id, with
/// the answer's `id` as `{id}`. Clients, and the fuzzer's stateful phase, follow them.
fn creation_links(doc: &mut OpenApi) {
    let mut links: Vec<(String, Vec<String>)> = Vec::new();
    for (path, item) in doc.paths.paths.iter() {
        if !item.post.as_ref().is_some_and(|post| post.responses.responses.contains_key("201")) {
            continue;
        }
        let item_path = format!("{path}/{{id}}");
        let targets: Vec<String> = doc
            .paths
            .paths
            .iter()
            .filter(|(other, _)| {
                *other == &item_path
                    || other.strip_prefix(&format!("{item_path}/")).is_some_and(|rest| !rest.contains('{'))
            })
            .flat_map(|(_, other)| [&other.get, &other.put, &other.post, &other.delete])
            .flatten()
            .filter_map(|operation| operation.operation_id.clone())
            .collect();
        links.push((path.clone(), targets));
    }
    for (path, targets) in links {
        let Some(RefOr::T(created)) = doc
            .paths
            .paths
            .get_mut(&path)
            .and_then(|item| item.post.as_mut())
            .and_then(|post| post.responses.responses.get_mut("201"))
        else {
            continue;
        };
        for operation_id in targets {
            let link =
                LinkBuilder::new().operation_id(operation_id.clone()).parameter("id", "$response.body#/id").build();
            created.links.insert(operation_id, RefOr::T(link));
        }
    }
}
