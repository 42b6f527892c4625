//! The API's own extractors for bodies, path and query parameters: the same as axum's, except
//! that a rejection is an [`ApiError`], so a malformed request gets the JSON error body and a
//! documented status like every other error, never axum's plain-text answer. The messages name
//! the field, never quote the value (it may be a card number or a code).

use super::ApiError;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;

/// A JSON body.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::Invalid(
                "expected Content-Type: application/json".into(),
            )),
            Err(JsonRejection::JsonSyntaxError(_)) => {
                Err(ApiError::Invalid("body is not valid JSON".into()))
            }
            Err(JsonRejection::JsonDataError(e)) => {
                let detail = e.body_text();
                // Name the field, never quote the value.
                let message = if detail.contains("missing field") {
                    detail
                } else {
                    "a field has the wrong type or value".into()
                };
                Err(ApiError::Invalid(message))
            }
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::Refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the request body is larger than the gateway accepts".into(),
            )),
            Err(_) => Err(ApiError::Invalid("unreadable body".into())),
        }
    }
}

/// Path parameters: `/api/tickets/abc` is a 400 `invalid` naming `id`.
pub struct Path<T>(pub T);

// The wrappers are the one place that uses axum's extractors (clippy.toml).
#[allow(clippy::disallowed_types)]
impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let message = match e.kind() {
                    ErrorKind::ParseErrorAtKey {
                        key, expected_type, ..
                    } => format!("{key} in the path must be {}", expected(expected_type)),
                    ErrorKind::ParseErrorAtIndex {
                        index,
                        expected_type,
                        ..
                    } => format!(
                        "path parameter {} must be {}",
                        index + 1,
                        expected(expected_type)
                    ),
                    // A lone parameter (`Path<i64>`): its name is the route's only one.
                    ErrorKind::ParseError { expected_type, .. } => {
                        let raw = RawPathParams::from_request_parts(parts, state).await;
                        let mut keys = raw.iter().flat_map(|r| r.iter().map(|(k, _)| k));
                        match (keys.next(), keys.next()) {
                            (Some(key), None) => {
                                format!("{key} in the path must be {}", expected(expected_type))
                            }
                            _ => format!("the path parameter must be {}", expected(expected_type)),
                        }
                    }
                    ErrorKind::InvalidUtf8InPathParam { key } => {
                        format!("{key} in the path is not valid UTF-8")
                    }
                    ErrorKind::DeserializeError { key, .. } => {
                        format!("{key} in the path is not valid")
                    }
                    ErrorKind::WrongNumberOfParameters { .. }
                    | ErrorKind::UnsupportedType { .. } => {
                        return Err(route_mismatch(&e.body_text()));
                    }
                    _ => "the path is not valid".to_string(),
                };
                Err(ApiError::Invalid(message))
            }
            Err(e) => Err(route_mismatch(&e.body_text())),
        }
    }
}

/// The route and the handler's `Path` type disagree: a bug of the gateway, not of the caller.
fn route_mismatch(detail: &str) -> ApiError {
    tracing::error!(%detail, "path parameters do not fit the route");
    ApiError::Refused(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error".into(),
    )
}

/// What a path parameter of this Rust type looks like, for the message.
fn expected(type_name: &str) -> &'static str {
    match type_name {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer",
        "bool" => "true or false",
        _ => "valid",
    }
}

/// Query parameters: `?limit=ten` is a 400 `invalid` naming `limit`.
pub struct Query<T>(pub T);

#[allow(clippy::disallowed_types)]
impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::Invalid(query_message(&e.body_text())))
            }
            Err(_) => Err(ApiError::Invalid("the query string is not valid".into())),
        }
    }
}

/// axum's text is `Failed to deserialize query string: <field>: <what>`, where `<what>` may
/// quote the value: keep the field only (or the name of a missing one).
fn query_message(detail: &str) -> String {
    let rest = detail.split_once(": ").map_or("", |(_, rest)| rest);
    if let Some(field) = rest.strip_prefix("missing field `") {
        let field = field.split('`').next().unwrap_or_default();
        return format!("the query parameter {field} is missing");
    }
    match rest.split_once(": ") {
        Some((field, _))
            if !field.is_empty()
                && field
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) =>
        {
            format!("the query parameter {field} has the wrong type or value")
        }
        _ => "a query parameter has the wrong type or value".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::query_message;

    #[test]
    fn query_messages_name_the_field_not_the_value() {
        assert_eq!(
            query_message(
                "Failed to deserialize query string: limit: invalid digit found in string"
            ),
            "the query parameter limit has the wrong type or value"
        );
        let m = query_message(
            "Failed to deserialize query string: status: unknown variant `4111111111111111`, \
             expected one of `open`, `closed`",
        );
        assert_eq!(m, "the query parameter status has the wrong type or value");
        assert_eq!(
            query_message("Failed to deserialize query string: missing field `since`"),
            "the query parameter since is missing"
        );
        assert_eq!(
            query_message("Failed to deserialize query string: invalid type: 4111 1111"),
            "a query parameter has the wrong type or value"
        );
    }
}
