//! What a [`NodeError`] becomes for a client: the gRPC status of a call, or the HTTP
//! status and JSON body of a request, both read from one table (`codes`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tonic::Code;

use crate::error::NodeError;

/// The gRPC code and the HTTP status of each error, side by side so the two surfaces
/// cannot drift apart (etcd keeps its error table the same way, in `api/v3rpc/util.go`).
fn codes(e: &NodeError) -> (Code, StatusCode) {
    match e {
        NodeError::InvalidInput(_) => (Code::InvalidArgument, StatusCode::BAD_REQUEST),
        NodeError::Rejected(_) | NodeError::Membership(_) => {
            (Code::FailedPrecondition, StatusCode::CONFLICT)
        }
        NodeError::QuotaExceeded(_) | NodeError::StorageFull { .. } => {
            (Code::ResourceExhausted, StatusCode::INSUFFICIENT_STORAGE)
        }
        NodeError::NotFound(_) => (Code::NotFound, StatusCode::NOT_FOUND),
        // Not UNAVAILABLE: a client must not fail over or retry, every node refuses alike.
        NodeError::WritesPaused(_) => (Code::FailedPrecondition, StatusCode::LOCKED),
        NodeError::NoLeader | NodeError::LeaderUnreachable { .. } | NodeError::ShuttingDown => {
            (Code::Unavailable, StatusCode::SERVICE_UNAVAILABLE)
        }
        NodeError::Timeout(_) => (Code::DeadlineExceeded, StatusCode::GATEWAY_TIMEOUT),
        NodeError::Internal(_) => (Code::Internal, StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// The gRPC metadata key carrying [`NodeError::kind`], so that a client can tell errors
/// that share a code apart (a quota breach and a full disk are both RESOURCE_EXHAUSTED).
pub const KIND_HEADER: &str = "opsdeck-error-kind";

impl From<NodeError> for tonic::Status {
    fn from(e: NodeError) -> tonic::Status {
        let mut status = tonic::Status::new(codes(&e).0, e.to_string());
        status.metadata_mut().insert(
            KIND_HEADER,
            tonic::metadata::MetadataValue::from_static(e.kind()),
        );
        status
    }
}

impl IntoResponse for NodeError {
    fn into_response(self) -> Response {
        (
            codes(&self).1,
            Json(json!({ "error": self.to_string(), "kind": self.kind() })),
        )
            .into_response()
    }
}
