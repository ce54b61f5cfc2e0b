//! The operations of the generic resource routes (`routes::resources`), described per
//! [`Resource`] type from what the type itself declares: its schemas (the resource, its create
//! body and its patch) and its list filters. One function serves the six resources, as one set of
//! handlers does.

use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::ObjectBuilder;
use utoipa::openapi::{Components, ContentBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder, Schema, Type};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use certctl_actors::domain::resources::Resource;

use super::super::paging::{Page, PagingParams};

/// Adds the five operations of resource `R` served under `path`; `noun` names one in prose.
pub fn add<R: Resource>(doc: &mut OpenApi, path: &str, noun: &str) {
    register_schemas::<R>(doc.components.get_or_insert_with(Components::new));
    let kind = R::name();
    let plural: String = path
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .split('-')
        .map(|word| word[..1].to_uppercase() + &word[1..])
        .collect();
    let item = format!("{path}/{{id}}");
    let problem = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
            )
            .build()
    };
    let json = |schema: RefOr<Schema>| ContentBuilder::new().schema(Some(schema)).build();
    let body = |schema: RefOr<Schema>| {
        Some(RequestBodyBuilder::new().content("application/json", json(schema)).required(Some(Required::True)).build())
    };
    let id = ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .schema(Some(string()))
        .description(Some(format!("The {noun}'s id.")))
        .build();
    let paths = &mut doc.paths;

    let mut list = OperationBuilder::new()
        .tag("resources")
        .operation_id(Some(format!("list{plural}")))
        .description(Some(
            "Oldest first. Keyset pages (`limit`, `cursor`) by default, certctl's offset pages with `page`/`per_page`; \
             `q` is a name prefix.",
        ))
        .response(
            "200",
            ResponseBuilder::new()
                .description(format!("A page of {noun}s."))
                .content("application/json", json(<Page<R> as PartialSchema>::schema()))
                .build(),
        );
    for parameter in PagingParams::into_params(|| Some(ParameterIn::Query)).into_iter().chain(filter_parameters::<R>())
    {
        list = list.parameter(parameter);
    }
    paths.add_path_operation(path, vec![HttpMethod::Get], list.build());

    let create = OperationBuilder::new()
        .tag("resources")
        .operation_id(Some(format!("create{kind}")))
        .request_body(body(Ref::from_schema_name(R::New::name()).into()))
        .response(
            "201",
            ResponseBuilder::new()
                .description(format!("The {noun} as stored; `Location` names it."))
                .header("Location", location_header())
                .content("application/json", json(Ref::from_schema_name(kind.clone()).into()))
                .build(),
        )
        .response("409", problem("The id or name is taken (`already-exists`)."))
        .response("422", problem("Invalid fields, or a reference to something missing (`validation-failed`)."));
    paths.add_path_operation(path, vec![HttpMethod::Post], create.build());

    let get = OperationBuilder::new()
        .tag("resources")
        .operation_id(Some(format!("get{kind}")))
        .parameter(id.clone())
        .response(
            "200",
            ResponseBuilder::new()
                .description(format!("The {noun}."))
                .content("application/json", json(Ref::from_schema_name(kind.clone()).into()))
                .build(),
        );
    paths.add_path_operation(&item, vec![HttpMethod::Get], get.build());

    let update = OperationBuilder::new()
        .tag("resources")
        .operation_id(Some(format!("update{kind}")))
        .description(Some("A partial update: absent fields keep their values."))
        .parameter(id.clone())
        .request_body(body(Ref::from_schema_name(R::Patch::name()).into()))
        .response(
            "200",
            ResponseBuilder::new()
                .description(format!("The {noun} as stored."))
                .content("application/json", json(Ref::from_schema_name(kind.clone()).into()))
                .build(),
        )
        .response("409", problem("The new name is taken (`already-exists`)."))
        .response("422", problem("Invalid fields, or a reference to something missing (`validation-failed`)."));
    paths.add_path_operation(&item, vec![HttpMethod::Put], update.build());

    let delete = OperationBuilder::new()
        .tag("resources")
        .operation_id(Some(format!("delete{kind}")))
        .parameter(id)
        .response("204", ResponseBuilder::new().description("Deleted.").build())
        .response("409", problem("Other resources still refer to it (`still-referenced`)."));
    paths.add_path_operation(&item, vec![HttpMethod::Delete], delete.build());
}

/// The resource's schemas and every schema they refer to.
fn register_schemas<R: Resource>(components: &mut Components) {
    let mut schemas = vec![
        (R::name().into_owned(), R::schema()),
        (R::New::name().into_owned(), R::New::schema()),
        (R::Patch::name().into_owned(), R::Patch::schema()),
    ];
    R::schemas(&mut schemas);
    R::New::schemas(&mut schemas);
    R::Patch::schemas(&mut schemas);
    components.schemas.extend(schemas);
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn location_header() -> utoipa::openapi::header::Header {
    utoipa::openapi::header::HeaderBuilder::new()
        .schema(Some(string()))
        .description(Some("The new resource's path."))
        .build()
}

/// `q` and the resource's own exact-match filters.
fn filter_parameters<R: Resource>() -> Vec<utoipa::openapi::path::Parameter> {
    std::iter::once(("q", "A prefix of the name."))
        .chain(R::FILTERS.iter().map(|(name, _)| (*name, "Exact match.")))
        .map(|(name, description)| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .schema(Some(string()))
                .description(Some(description))
                .build()
        })
        .collect()
}
