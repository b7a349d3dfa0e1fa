//! The one error type of both daemons' HTTP handlers: the client gets
//! `{"error": "..."}` with the right status, the log gets the cause of a 500.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: a parameter or body the handler cannot use.
    #[error("{0}")]
    BadRequest(String),
    /// 401: a mutating endpoint asked for without the right bearer token.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: a mutating endpoint asked for from another machine with no admin token set.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such endpoint, host or file.
    #[error("{0}")]
    NotFound(String),
    /// 503: nothing to serve yet (before the first sample).
    #[error("{0}")]
    NotReady(String),
    /// 500: our fault; logged.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        AppError::BadRequest(rejection.body_text())
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        AppError::BadRequest(rejection.body_text())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(cause) => {
                tracing::error!(%cause, "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        // A 500 tells the client little; the cause went to the log above.
        let message = match &self {
            AppError::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        };
        let mut response = (status, Json(serde_json::json!({ "error": message }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
