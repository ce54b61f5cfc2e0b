//! `ValidJson<T>`: a JSON body extractor whose every failure is a precise problem: wrong media
//! type (415), too large (413), not JSON (400 `malformed-json`), or JSON of the wrong shape —
//! unknown or missing fields, wrong types — (400 `invalid-body`, naming the field's path); and
//! `OptionalJson<T>` for bodies that may be left out.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::body_limit::BodyLimit;
use super::problem::ApiError;

/// A deserialized JSON request body.
pub struct ValidJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ValidJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        if let Err(e) = check_json_media_type(content_type) {
            return Box::pin(async move { Err(e) });
        }
        let limit = req.app_data::<web::Data<BodyLimit>>().map(|l| l.0).unwrap_or(0);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = body.await.map_err(|e| read_error(&e, limit))?;
            parse(&bytes).map(ValidJson)
        })
    }
}

/// A JSON body that may be left out: no body (or an empty one) is `None`; anything else must be
/// valid JSON of the right shape, with the same problems as [`ValidJson`] (never a silent `None`).
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // The body decides, not the headers: an HTTP/2 body may come without Content-Length.
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let limit = req.app_data::<web::Data<BodyLimit>>().map(|l| l.0).unwrap_or(0);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = body.await.map_err(|e| read_error(&e, limit))?;
            if bytes.is_empty() {
                return Ok(OptionalJson(None));
            }
            check_json_media_type(content_type.as_deref().unwrap_or(""))?;
            parse(&bytes).map(|value| OptionalJson(Some(value)))
        })
    }
}

/// Why a body could not be read: too large (413, naming the limit) or cut off.
fn read_error(error: &actix_web::Error, limit: u64) -> ApiError {
    if error.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit }
    } else {
        ApiError::MalformedJson(format!("the request body could not be read: {error}"))
    }
}

/// 415 unless the media type is `application/json` or `+json`.
fn check_json_media_type(content_type: &str) -> Result<(), ApiError> {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence != "application/json" && !essence.ends_with("+json") {
        let shown = if content_type.is_empty() { "none".to_string() } else { format!("{content_type:?}") };
        return Err(ApiError::UnsupportedMediaType(format!(
            "send the body as application/json (Content-Type was {shown})"
        )));
    }
    Ok(())
}

/// Deserializes `bytes` as one JSON value of type `T`, with the failing field's path on error.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedJson("the request body is empty; send a JSON object".into()));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        body_error(inner, path)
    })?;
    // Reject anything after the value (`{...} garbage`).
    deserializer.end().map_err(|e| body_error(e, String::from(".")))?;
    Ok(value)
}

fn body_error(error: serde_json::Error, path: String) -> ApiError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::MalformedJson(format!("the request body is not valid JSON: {error}"))
        }
        Category::Data => {
            let field = (path != "." && !path.is_empty()).then_some(path);
            ApiError::InvalidBody { detail: error.to_string(), field }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: u32,
    }

    #[test]
    fn syntax_errors_are_malformed_json() {
        assert!(matches!(parse::<Body>(b"{\"name\": "), Err(ApiError::MalformedJson(_))));
        assert!(matches!(parse::<Body>(b"{\"name\":\"a\",\"count\":1} x"), Err(ApiError::MalformedJson(_))));
        assert!(matches!(parse::<Body>(b""), Err(ApiError::MalformedJson(_))));
    }

    #[test]
    fn shape_errors_name_the_field() {
        match parse::<Body>(br#"{"name":"a","count":"x"}"#) {
            Err(ApiError::InvalidBody { field, .. }) => assert_eq!(field.as_deref(), Some("count")),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(parse::<Body>(br#"{"name":"a","count":1,"extra":true}"#), Err(ApiError::InvalidBody { .. })));
        assert!(matches!(parse::<Body>(br#"{"name":"a"}"#), Err(ApiError::InvalidBody { .. })));
    }
}
