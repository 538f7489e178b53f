//! Errors: [`ApiError`], what a client gets (an HTTP status and an OpenAI-style body), and
//! [`ServeError`], what can stop the server from starting.

use std::path::PathBuf;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answered to a client: status + `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message (names the field and value at fault where there is one).
    pub message: String,
    /// OpenAI error type, e.g. `invalid_request_error`.
    pub kind: &'static str,
    /// The request field at fault, if any.
    pub param: Option<String>,
    /// A short machine-readable code, e.g. `invalid_value`.
    pub code: &'static str,
}

/// The JSON body of an [`ApiError`].
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
struct ErrorDetail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: &'a str,
}

impl ApiError {
    /// 400 for field `param`: `"{param}: {message}"`.
    pub fn invalid(param: &str, message: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: format!("{param}: {message}"),
            kind: "invalid_request_error",
            param: Some(param.to_string()),
            code: "invalid_value",
        }
    }

    /// 400 about the request as a whole (no single field).
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: None,
            code,
        }
    }

    /// 401: missing or wrong bearer key.
    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: "missing or invalid API key (send `Authorization: Bearer KEY`)".into(),
            kind: "invalid_request_error",
            param: None,
            code: "invalid_api_key",
        }
    }

    /// 404: no such route.
    pub fn not_found(path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!("no route {path}"),
            kind: "invalid_request_error",
            param: None,
            code: "not_found",
        }
    }

    /// 405: the route exists but not for this method.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: format!("{path} does not accept {method}"),
            kind: "invalid_request_error",
            param: None,
            code: "method_not_allowed",
        }
    }

    /// 413: the body is larger than `limit` bytes.
    pub fn too_large(limit: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("request body larger than {limit} bytes"),
            kind: "invalid_request_error",
            param: None,
            code: "body_too_large",
        }
    }

    /// 429: the running batch and the queue are full.
    pub fn overloaded(asked: usize, capacity: usize) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "server busy: {asked} sequence(s) asked for, no room among the {capacity} \
                 running + queued; retry later"
            ),
            kind: "rate_limit_error",
            param: None,
            code: "queue_full",
        }
    }

    /// 503: the server is shutting down.
    pub fn shutting_down() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the server is shutting down; the request was cancelled".into(),
            kind: "server_error",
            param: None,
            code: "shutting_down",
        }
    }

    /// 500: the generation failed inside the server.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            param: None,
            code: "generation_failed",
        }
    }

    /// The OpenAI-style JSON body.
    pub fn body(&self) -> String {
        serde_json::to_string(&ErrorBody {
            error: ErrorDetail {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        })
        .unwrap_or_else(|_| "{\"error\":{\"message\":\"error\"}}".into())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.body(),
        )
            .into_response()
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The model failed to load.
    #[error("loading the model: {0}")]
    Model(#[from] adasamp_engine::EngineError),
    /// A file of the samplers directory is not a valid pipeline file or checkpoint.
    #[error("sampler {path}: {reason}")]
    Sampler { path: PathBuf, reason: String },
    /// Two installed samplers have the same name.
    #[error("sampler name `{name}` is installed twice: {first} and {second}")]
    DuplicateSampler {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    /// An option out of range.
    #[error("option {field} = {value}: {reason}")]
    Option {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    /// Binding or serving on the socket failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The engine thread ended before the server was ready.
    #[error("the engine thread ended during start-up")]
    EngineGone,
}
