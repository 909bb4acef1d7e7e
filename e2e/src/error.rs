//! API errors and their `metav1.Status` wire form.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// One field-level cause of an `Invalid` error (`status.details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Machine-readable reason, e.g. `FieldValueInvalid`, `FieldValueRequired`.
    pub reason: String,
    /// Field path, e.g. `spec.replicas`.
    pub field: String,
    /// Human-readable message.
    pub message: String,
}

/// An error answered by the API stand-in; each variant maps to one `metav1.Status` reason.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// 404 NotFound.
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        /// Resource (plural, with group) that was looked up.
        resource: String,
        /// Object name.
        name: String,
    },
    /// 404 NotFound for a path that names no served resource.
    #[error("the server could not find the requested resource ({0})")]
    NoRoute(String),
    /// 409 AlreadyExists.
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        /// Resource (plural, with group).
        resource: String,
        /// Object name.
        name: String,
    },
    /// 409 Conflict (optimistic concurrency or server-side apply field conflict).
    #[error("{0}")]
    Conflict(String),
    /// 409 Conflict with field causes (server-side apply conflicts).
    #[error("{message}")]
    ConflictWithCauses {
        /// Full message.
        message: String,
        /// Conflicting fields.
        causes: Vec<Cause>,
    },
    /// 422 Invalid with field causes.
    #[error("{message}")]
    Invalid {
        /// Full message.
        message: String,
        /// Field-level causes.
        causes: Vec<Cause>,
    },
    /// 410 Gone (resourceVersion too old).
    #[error("{0}")]
    Gone(String),
    /// 405 MethodNotAllowed.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 400 BadRequest.
    #[error("{0}")]
    BadRequest(String),
    /// 415 UnsupportedMediaType.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 500 InternalError.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// HTTP status code of this error.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute(_) => 404,
            ApiError::AlreadyExists { .. } | ApiError::Conflict(_) | ApiError::ConflictWithCauses { .. } => {
                409
            }
            ApiError::Invalid { .. } => 422,
            ApiError::Gone(_) => 410,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::BadRequest(_) => 400,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Internal(_) => 500,
        }
    }

    /// `metav1.Status.reason` of this error.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute(_) => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict(_) | ApiError::ConflictWithCauses { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::Gone(_) => "Expired",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Internal(_) => "InternalError",
        }
    }

    /// The `metav1.Status` JSON body for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        let details = match self {
            ApiError::NotFound { resource, name } | ApiError::AlreadyExists { resource, name } => {
                Some(status_details(resource, name))
            }
            ApiError::Invalid { causes, .. } | ApiError::ConflictWithCauses { causes, .. } => Some(json!({
                "causes": causes.iter().map(|c| json!({
                    "reason": c.reason, "message": c.message, "field": c.field,
                })).collect::<Vec<_>>(),
            })),
            _ => None,
        };
        if let (Some(d), Some(obj)) = (details, status.as_object_mut()) {
            obj.insert("details".into(), d);
        }
        status
    }
}

/// `status.details` naming the resource; `resource` may be `plural.group`.
fn status_details(resource: &str, name: &str) -> Value {
    let (kind, group) = resource.split_once('.').unwrap_or((resource, ""));
    json!({ "name": name, "group": group, "kind": kind })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        crate::server::json_response(code, &self.to_status())
    }
}

/// Errors starting or running the server itself (not API answers).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding or serving failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Writing the kubeconfig failed.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
}

/// Errors of the test bed components around the API stand-in (simulator, proxy, Prometheus,
/// Git, sync loop, alert receiver, [`crate::bed::TestBed`]).
#[derive(Debug, thiserror::Error)]
pub enum BedError {
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The API stand-in failed to start or give a client.
    #[error("api server: {0}")]
    Server(#[from] ServerError),
    /// A Kubernetes API call failed.
    #[error("kubernetes api: {0}")]
    Kube(#[from] kube::Error),
    /// An HTTP call to a test bed component failed.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// A required program is not installed.
    #[error("{program} not found ({hint})")]
    Missing {
        /// The program looked for.
        program: String,
        /// How to get it.
        hint: String,
    },
    /// A child process did not behave (exited early, printed garbage, a command failed).
    #[error("{0}")]
    Process(String),
    /// Something did not happen in time.
    #[error("timed out after {0:?}: {1}")]
    Timeout(std::time::Duration, String),
    /// A manifest or answer could not be parsed.
    #[error("parse: {0}")]
    Parse(String),
}

impl BedError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BedError {
        let context = context.into();
        move |source| BedError::Io { context, source }
    }
}
