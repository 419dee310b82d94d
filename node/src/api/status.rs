//! What a [`NodeError`] becomes for a client: the gRPC status of a call, or the HTTP
//! status and JSON body of a request.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::NodeError;

impl From<NodeError> for tonic::Status {
    fn from(e: NodeError) -> tonic::Status {
        let msg = e.to_string();
        match e {
            NodeError::InvalidInput(_) => tonic::Status::invalid_argument(msg),
            NodeError::QuotaExceeded(_) => tonic::Status::resource_exhausted(msg),
            NodeError::NotFound(_) => tonic::Status::not_found(msg),
            NodeError::Rejected(_) | NodeError::Membership(_) => {
                tonic::Status::failed_precondition(msg)
            }
            NodeError::NoLeader | NodeError::LeaderUnreachable { .. } | NodeError::ShuttingDown => {
                tonic::Status::unavailable(msg)
            }
            NodeError::Timeout(_) => tonic::Status::deadline_exceeded(msg),
            NodeError::Internal(_) => tonic::Status::internal(msg),
        }
    }
}

impl IntoResponse for NodeError {
    fn into_response(self) -> Response {
        let code = match &self {
            NodeError::InvalidInput(_) => StatusCode::BAD_REQUEST,
            NodeError::Rejected(_) | NodeError::Membership(_) => StatusCode::CONFLICT,
            NodeError::QuotaExceeded(_) => StatusCode::INSUFFICIENT_STORAGE,
            NodeError::NotFound(_) => StatusCode::NOT_FOUND,
            NodeError::NoLeader | NodeError::LeaderUnreachable { .. } | NodeError::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            NodeError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            NodeError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (
            code,
            Json(json!({ "error": self.to_string(), "kind": self.kind() })),
        )
            .into_response()
    }
}
