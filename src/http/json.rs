//! `ValidJson<T>`: a JSON body extractor whose every failure is a precise problem: wrong media
//! type (415), too large (413), not JSON (400 `malformed-json`), or JSON of the wrong shape —
//! unknown or missing fields, wrong types — (400 `invalid-body`, naming the field's path); and
//! `OptionalJson<T>` for bodies that may be left out.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::body_limit::{body_timeout, BodyLimit};
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
        let body = read_body(req, payload, limit);
        Box::pin(async move { parse(&body.await?).map(ValidJson) })
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
        let body = read_body(req, payload, limit);
        Box::pin(async move {
            let bytes = body.await?;
            if bytes.is_empty() {
                return Ok(OptionalJson(None));
            }
            check_json_media_type(content_type.as_deref().unwrap_or(""))?;
            parse(&bytes).map(|value| OptionalJson(Some(value)))
        })
    }
}

/// The whole body of a request whose handler reads it itself (the ACME routes, whose bodies are
/// JWS), within `CERTCTL_MAX_BODY_SIZE` and the body timeout.
pub async fn raw_body(req: &HttpRequest, payload: &mut Payload) -> Result<web::Bytes, ApiError> {
    let limit = req.app_data::<web::Data<super::body_limit::BodyLimit>>().map_or(1 << 20, |l| l.0);
    read_body(req, payload, limit).await
}

/// The whole body, within the size limit and the body timeout.
fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
    limit: u64,
) -> impl std::future::Future<Output = Result<web::Bytes, ApiError>> {
    let timeout = body_timeout(req);
    let body = web::Bytes::from_request(req, payload);
    async move {
        match tokio::time::timeout(timeout, body).await {
            Ok(read) => read.map_err(|e| read_error(&e, limit)),
            Err(_) => Err(ApiError::BodyTimeout { secs: timeout.as_secs_f64() }),
        }
    }
}

/// Why a body could not be read: too large (413, naming the limit) or cut off.
fn read_error(error: &actix_web::Error, limit: u64) -> ApiError {
    if error.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit }
    } else {
        tracing::debug!(error = %error, "request body not read");
        ApiError::MalformedJson("the request body could not be read to its end (cut off or badly framed)".into())
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
    check_shape(bytes)?;
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
        Category::Eof => ApiError::MalformedJson("the request body is not valid JSON: it ends too early".into()),
        Category::Syntax | Category::Io => ApiError::MalformedJson(format!(
            "the request body is not valid JSON (line {}, column {})",
            error.line(),
            error.column()
        )),
        Category::Data => {
            let field = (path != "." && !path.is_empty()).then_some(path);
            ApiError::InvalidBody { detail: reword(&error.to_string()), field }
        }
    }
}

/// A data error in our words: no position (the field is named instead) and no Rust type names
/// (`expected struct NewCertificate` becomes `expected an object`).
fn reword(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => message,
    };
    let mut words: Vec<String> = Vec::new();
    let mut parts = message.split(' ').peekable();
    while let Some(word) = parts.next() {
        let bare = word.trim_end_matches([',', ';', ':']);
        let punctuation = &word[bare.len()..];
        let replaced = match bare {
            "struct" | "enum" if parts.peek().is_some() => {
                let name = parts.next().unwrap_or_default();
                let tail = &name[name.trim_end_matches([',', ';', ':']).len()..];
                let what = if bare == "struct" { "an object" } else { "one of the accepted values" };
                words.push(format!("{what}{tail}"));
                continue;
            }
            "sequence" => "a list".to_string(),
            "map" => "an object".to_string(),
            other => other.replace('`', "\""),
        };
        words.push(format!("{replaced}{punctuation}"));
    }
    words.join(" ")
}

/// The shape every body of this API has, checked on the raw bytes before deserializing: one JSON
/// object, whose lists hold values or objects but never lists. (A Rust struct would otherwise
/// accept a list of its field values in order, so a 12-element array could create a certificate.)
fn check_shape(bytes: &[u8]) -> Result<(), ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::InvalidBody { detail: "the request body must be a JSON object".into(), field: None });
    }
    // The kinds of the open containers (true: a list), and whether we are inside a string.
    let (mut open, mut in_string, mut escaped) = (Vec::<bool>::with_capacity(16), false, false);
    for &byte in bytes {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' if open.last() == Some(&true) => {
                return Err(ApiError::InvalidBody {
                    detail: "a list in this API holds values or objects, never lists".into(),
                    field: None,
                })
            }
            b'[' => open.push(true),
            b'{' => open.push(false),
            b']' | b'}' => {
                open.pop();
            }
            _ => {}
        }
    }
    Ok(())
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
    fn bodies_are_objects_whose_lists_hold_no_lists() {
        let err = |body: &[u8]| match parse::<Body>(body) {
            Err(ApiError::InvalidBody { detail, .. }) => detail,
            other => panic!("unexpected {other:?}"),
        };
        assert!(err(b"[\"a\", 1]").contains("must be a JSON object"));
        assert!(err(b" 42").contains("must be a JSON object"));
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Nested {
            items: Vec<Body>,
        }
        assert!(matches!(parse::<Nested>(br#"{"items": [["a", 1]]}"#), Err(ApiError::InvalidBody { .. })));
        assert!(parse::<Nested>(br#"{"items": [{"name": "[[", "count": 1}]}"#).is_ok(), "brackets inside strings");
        assert!(parse::<Nested>(br#"{"items": [{"name": "a\"[[", "count": 1}]}"#).is_ok(), "escaped quotes");
    }

    #[test]
    fn data_errors_name_no_rust_types_and_no_positions() {
        match parse::<Body>(br#"{"name": {"x": 1}, "count": 1}"#) {
            Err(ApiError::InvalidBody { detail, .. }) => {
                assert!(!detail.contains("line") && !detail.contains('`'), "{detail}");
                assert!(detail.contains("an object"), "{detail}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            reword("invalid type: sequence, expected struct NewCertificate at line 1 column 1"),
            "invalid type: a list, expected an object"
        );
        match parse::<Body>(b"{\"name\": ") {
            Err(ApiError::MalformedJson(detail)) => assert!(!detail.contains("EOF"), "{detail}"),
            other => panic!("unexpected {other:?}"),
        }
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
