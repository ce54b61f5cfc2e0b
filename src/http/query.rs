//! Query strings, read one way everywhere: [`Query<T>`] for a route's own parameters and
//! [`ListQuery<T>`] for a list's paging (the parameters every list shares, checked once in
//! [`PageRequest::parse`]) plus its filters. Every failure is a 400 `invalid-query` in our own
//! words: an unknown parameter names the accepted ones, a repeated one is refused (which of two
//! values wins differs between clients and proxies), and no library's message reaches a client.

use std::collections::BTreeMap;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::{ready, Ready};
use serde::de::value::MapDeserializer;
use serde::de::DeserializeOwned;

use super::paging::PageRequest;
use super::problem::ApiError;

/// The parameters a query type accepts (besides paging, for lists).
pub trait QueryFields {
    /// Every parameter name, as the client writes it.
    const FIELDS: &'static [&'static str] = &[];

    /// Whether `name` is one of them.
    fn accepts(name: &str) -> bool {
        Self::FIELDS.contains(&name)
    }

    /// Every accepted name, for the message that refuses another.
    fn accepted() -> Vec<&'static str> {
        Self::FIELDS.to_vec()
    }
}

/// No parameters at all.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

impl QueryFields for NoParams {}

/// The paging parameters every list accepts.
pub const PAGING_FIELDS: [&str; 5] = ["limit", "cursor", "page", "per_page", "include_total"];

/// A route's own query parameters.
#[derive(Debug)]
pub struct Query<T>(pub T);

/// A list's query: its page and its own parameters, plus the raw pairs (the audited-read summary).
#[derive(Debug)]
pub struct ListQuery<T> {
    pub paging: PageRequest,
    pub params: T,
    /// Every parameter as sent, by name.
    pub raw: BTreeMap<String, String>,
}

/// The query string as pairs, each name at most once.
fn pairs(req: &HttpRequest) -> Result<BTreeMap<String, String>, ApiError> {
    let list: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).map_err(|_| {
        ApiError::InvalidQuery("the query string is not valid application/x-www-form-urlencoded".into())
    })?;
    let mut map = BTreeMap::new();
    for (name, value) in list {
        if map.contains_key(&name) {
            return Err(ApiError::InvalidQuery(format!("{name} is given more than once; send it once")));
        }
        map.insert(name, value);
    }
    Ok(map)
}

fn unknown(name: &str, accepted: &[&str]) -> ApiError {
    if accepted.is_empty() {
        return ApiError::InvalidQuery(format!("unknown parameter {name:?}; this endpoint takes no query parameters"));
    }
    ApiError::InvalidQuery(format!("unknown parameter {name:?}; accepted: {}", accepted.join(", ")))
}

/// `T` from the pairs left after paging; every name must be one of `T::FIELDS`.
fn params<T: DeserializeOwned + QueryFields>(map: BTreeMap<String, String>, paging: bool) -> Result<T, ApiError> {
    if let Some(name) = map.keys().find(|name| !T::accepts(name)) {
        let mut accepted: Vec<&str> = if paging { PAGING_FIELDS.to_vec() } else { Vec::new() };
        accepted.extend(T::accepted());
        return Err(unknown(name, &accepted));
    }
    let deserializer =
        MapDeserializer::<_, serde::de::value::Error>::new(map.into_iter().map(|(k, v)| (k, QueryValue(v))));
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = e.path().to_string();
        ApiError::InvalidQuery(format!("{field} has a value this endpoint does not accept"))
    })
}

/// One parameter's text, which deserializes as a string, or as `Some` of one for an `Option`.
struct QueryValue(String);

impl<'de> serde::de::IntoDeserializer<'de, serde::de::value::Error> for QueryValue {
    type Deserializer = QueryValue;

    fn into_deserializer(self) -> QueryValue {
        self
    }
}

impl<'de> serde::Deserializer<'de> for QueryValue {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_string(self.0)
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

fn integer(map: &mut BTreeMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    map.remove(name)
        .map(|v| v.parse().map_err(|_| ApiError::InvalidQuery(format!("{name} must be an integer (got {v:?})"))))
        .transpose()
}

impl<T: DeserializeOwned + QueryFields> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(pairs(req).and_then(|map| params(map, false)).map(Query))
    }
}

impl<T: DeserializeOwned + QueryFields> FromRequest for ListQuery<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready((|| {
            let raw = pairs(req)?;
            let mut map = raw.clone();
            let (limit, page, per_page) =
                (integer(&mut map, "limit")?, integer(&mut map, "page")?, integer(&mut map, "per_page")?);
            let include_total = map
                .remove("include_total")
                .map(|v| match v.as_str() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    _ => Err(ApiError::InvalidQuery(format!("include_total must be true or false (got {v:?})"))),
                })
                .transpose()?;
            let cursor = map.remove("cursor");
            let paging = PageRequest::parse(limit, cursor, page, per_page, include_total)?;
            Ok(ListQuery { paging, params: params(map, true)?, raw })
        })())
    }
}
