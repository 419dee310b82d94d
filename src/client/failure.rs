//! Why a command failed, in the classes its exit status tells a script (the table in
//! `opsdeck --help` and the README): a node's refusal is classed by its gRPC code and the
//! node's error kind (`opsdeck-error-kind`), a cluster that never answered is
//! `Unavailable`, and a verb may say `NotFound` itself (a missing key, a lost
//! compare-and-set).

use std::fmt;

use tonic::{Code, Status};

/// The classes of failure, each with its own exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// 1: anything else.
    Error,
    /// 2: the command line, or a value in it, is wrong.
    Usage,
    /// 3: no such key, node or record; a compare-and-set that lost.
    NotFound,
    /// 4: the cluster did not answer, has no leader, or timed out.
    Unavailable,
    /// 5: authentication or permission refused.
    Refused,
    /// 6: a quota or the rate limit.
    Limited,
    /// 7: a node's storage is full.
    StorageFull,
    /// 8: replicas disagree (`opsdeck check`: a node's state digest differs).
    Diverged,
    /// 9: writes are paused (maintenance mode, `opsdeck writes pause`).
    WritesPaused,
}

impl Class {
    pub fn exit_code(self) -> i32 {
        match self {
            Class::Error => 1,
            Class::Usage => 2,
            Class::NotFound => 3,
            Class::Unavailable => 4,
            Class::Refused => 5,
            Class::Limited => 6,
            Class::StorageFull => 7,
            Class::Diverged => 8,
            Class::WritesPaused => 9,
        }
    }

    /// The class of a node's error answer.
    pub fn of(status: &Status) -> Class {
        let kind = status
            .metadata()
            .get(opsdeck_node::api::status::KIND_HEADER)
            .and_then(|v| v.to_str().ok());
        match (status.code(), kind) {
            (_, Some("storage_full")) => Class::StorageFull,
            (_, Some("writes_paused")) => Class::WritesPaused,
            (Code::ResourceExhausted, _) => Class::Limited,
            (Code::NotFound, _) => Class::NotFound,
            (Code::Unauthenticated | Code::PermissionDenied, _) => Class::Refused,
            (Code::InvalidArgument | Code::OutOfRange, _) => Class::Usage,
            (Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled, _) => Class::Unavailable,
            _ => Class::Error,
        }
    }
}

/// The exit statuses, for `--help` and the README.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  ok
  1  error (anything not below)
  2  usage: a bad flag, argument or value (also a value a node refused as invalid)
  3  not found: no such key, node or record; a compare-and-set that lost
  4  cluster unavailable: no node answered, no leader, or timed out
  5  refused: authentication or permission
  6  a quota or the rate limit
  7  storage full on a node (writes resume by themselves once space is freed)
  8  replicas diverge: a node's state digest differs from the others' (opsdeck check)
  9  writes paused (maintenance mode): reads go on; `opsdeck writes resume` ends it

`alerts --check` instead exits 0 when nothing fires, 1 when only warnings fire, 2 when a
critical alert fires (Nagios).";

/// A failure with its class; found in an error's chain by `main` for the exit status.
#[derive(Debug)]
pub struct Failure {
    pub class: Class,
    pub message: String,
}

impl Failure {
    pub fn new(class: Class, message: impl Into<String>) -> Failure {
        Failure {
            class,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The class of a failed command: the first [`Failure`] in its error's chain (an error
/// without one is `Error`).
pub fn class_of(e: &color_eyre::Report) -> Class {
    e.chain()
        .find_map(|c| c.downcast_ref::<Failure>())
        .map_or(Class::Error, |f| f.class)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_answers_are_classed_by_code_and_kind() {
        let mut full = Status::resource_exhausted("storage full on node 2");
        full.metadata_mut().insert(
            opsdeck_node::api::status::KIND_HEADER,
            tonic::metadata::MetadataValue::from_static("storage_full"),
        );
        assert_eq!(Class::of(&full), Class::StorageFull);
        let mut paused = Status::failed_precondition("writes paused by k1 since …");
        paused.metadata_mut().insert(
            opsdeck_node::api::status::KIND_HEADER,
            tonic::metadata::MetadataValue::from_static("writes_paused"),
        );
        assert_eq!(Class::of(&paused), Class::WritesPaused);
        assert_eq!(Class::WritesPaused.exit_code(), 9);
        assert_eq!(
            Class::of(&Status::resource_exhausted("quota")),
            Class::Limited
        );
        assert_eq!(Class::of(&Status::not_found("k")), Class::NotFound);
        assert_eq!(Class::of(&Status::permission_denied("no")), Class::Refused);
        assert_eq!(Class::of(&Status::unauthenticated("no")), Class::Refused);
        assert_eq!(
            Class::of(&Status::invalid_argument("bad key")),
            Class::Usage
        );
        assert_eq!(
            Class::of(&Status::unavailable("no leader")),
            Class::Unavailable
        );
        assert_eq!(Class::of(&Status::failed_precondition("x")), Class::Error);
    }

    #[test]
    fn the_class_is_found_under_context() {
        use color_eyre::eyre::WrapErr;
        let e: color_eyre::Result<()> =
            Err(Failure::new(Class::NotFound, "key a not found").into());
        let e = e.wrap_err("get a").unwrap_err();
        assert_eq!(class_of(&e), Class::NotFound);
        assert_eq!(class_of(&color_eyre::eyre::eyre!("plain")), Class::Error);
    }
}
