//! Failpoints in the storage code, the way TiKV uses the `fail` crate: named points that a
//! test can make return an I/O error or stall, in a node built with the test-only feature
//! `failpoints`. Without it, [`fail_io!`](crate::fail_io) and
//! [`fail_io_or!`](crate::fail_io_or) expand to nothing (the plain expression), so a
//! release build holds no failpoint code and none of these names.
//!
//! A point is configured with a `fail` action string: `return(EIO)` (or another errno name,
//! or a number; `return` alone is EIO), `sleep(2000)`, `50%return(ENOSPC)`, `1*return`,
//! `pause`, `off`… (see `fail::cfg`). It is set at start from `FAILPOINTS=NAME=ACTIONS;…`
//! ([`configure_from_env`]) or at run time over HTTP (`api/failpoints.rs`:
//! `PUT /debug/failpoints/NAME`, admin only). The names are [`NAMES`]; RELIABILITY.md
//! ("Failpoints") lists them with what the node does when one fires.

/// Every failpoint, with where it is: the one list (the HTTP route refuses other names).
pub const NAMES: &[(&str, &str)] = &[
    (
        "log_store::append",
        "raft log append, before the entries are written to sled",
    ),
    (
        "log_store::flush",
        "the log's fsync: the flusher's shared flush of appended entries, and a vote's flush",
    ),
    (
        "state_machine::apply",
        "applying committed entries, before their batch is written",
    ),
    (
        "snapshot::write",
        "building a snapshot: each pair written to snapshot.bin.building",
    ),
    (
        "snapshot::receive_chunk",
        "each chunk of a snapshot the leader sends, as it arrives, before it is written",
    ),
    (
        "snapshot::install",
        "installing a snapshot received from the leader, before it is checked and loaded",
    ),
];

/// Returns early from the enclosing function with `Err(ERR)` when failpoint `NAME` fires
/// with `return(ERRNO)`; `ident` is the `std::io::Error` it made, for `ERR` to wrap:
/// `fail_io!("log_store::append", e => StorageIOError::write_logs(&e).into());`.
/// A `sleep(ms)` action stalls the calling thread. Nothing at all without the feature.
#[cfg(feature = "failpoints")]
#[macro_export]
macro_rules! fail_io {
    ($name:literal, $e:ident => $err:expr) => {
        if let Some($e) = $crate::failpoint::io($name) {
            return Err($err);
        }
    };
}

/// See the version with the feature: this one expands to nothing.
#[cfg(not(feature = "failpoints"))]
#[macro_export]
macro_rules! fail_io {
    ($name:literal, $e:ident => $err:expr) => {};
}

/// `EXPR` (a `Result`), or `Err(ERR)` when failpoint `NAME` fires first:
/// `let result = fail_io_or!("log_store::flush", e => sled::Error::Io(e); db.flush());`.
/// Without the feature, just `EXPR`.
#[cfg(feature = "failpoints")]
#[macro_export]
macro_rules! fail_io_or {
    ($name:literal, $e:ident => $err:expr; $expr:expr) => {
        match $crate::failpoint::io($name) {
            Some($e) => Err($err),
            None => $expr,
        }
    };
}

/// See the version with the feature: this one is just the expression.
#[cfg(not(feature = "failpoints"))]
#[macro_export]
macro_rules! fail_io_or {
    ($name:literal, $e:ident => $err:expr; $expr:expr) => {
        $expr
    };
}

/// Evaluates failpoint `name` (stalling here for `sleep`/`pause`): the I/O error its
/// `return(ARG)` action asks for, or None.
#[cfg(feature = "failpoints")]
pub fn io(name: &'static str) -> Option<std::io::Error> {
    let err = fail::eval(name, |arg| error_for(arg.as_deref()))?;
    tracing::warn!(failpoint = name, error = %err, "failpoint fired");
    Some(err)
}

/// The error a `return(ARG)` action stands for, as the OS would report it
/// (`raw_os_error()` is the errno): ARG an errno name (`EIO`, `ENOSPC`, …) or number; EIO
/// when ARG is absent. [`set`] refuses any other ARG, so the fallback to EIO for one is only
/// a guard.
pub fn error_for(arg: Option<&str>) -> std::io::Error {
    let arg = arg.map(str::trim).unwrap_or("");
    let errno = if arg.is_empty() {
        EIO
    } else {
        errno(arg).unwrap_or(EIO)
    };
    std::io::Error::from_raw_os_error(errno)
}

const EIO: i32 = 5;

/// Linux errno values of the errors a disk can give.
const ERRNOS: &[(&str, i32)] = &[
    ("EPERM", 1),
    ("EIO", EIO),
    ("ENXIO", 6),
    ("EBADF", 9),
    ("EAGAIN", 11),
    ("ENOMEM", 12),
    ("EACCES", 13),
    ("EBUSY", 16),
    ("ENODEV", 19),
    ("EINVAL", 22),
    ("EMFILE", 24),
    ("EFBIG", 27),
    ("ENOSPC", 28),
    ("EROFS", 30),
    ("EDQUOT", 122),
];

fn errno(arg: &str) -> Option<i32> {
    if let Ok(n) = arg.parse::<i32>() {
        return (1..4096).contains(&n).then_some(n);
    }
    ERRNOS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(arg))
        .map(|&(_, v)| v)
}

/// Refuses a `return(ARG)` whose ARG is no errno: it would fire as something else than
/// the test meant.
#[cfg(any(feature = "failpoints", test))]
fn check_returns(actions: &str) -> Result<(), String> {
    for action in actions.split("->") {
        let Some(at) = action.find("return(") else {
            continue;
        };
        let arg = action[at + "return(".len()..]
            .trim_end()
            .trim_end_matches(')');
        if !arg.trim().is_empty() && errno(arg.trim()).is_none() {
            let names: Vec<&str> = ERRNOS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "return({arg}): {arg:?} is no errno; give a number or one of {}",
                names.join(", ")
            ));
        }
    }
    Ok(())
}

/// Sets the failpoints named in `FAILPOINTS` (`NAME=ACTIONS;NAME=ACTIONS`, the format of
/// `fail::FailScenario`), so a test can have one fire from the node's first instruction
/// on. Answers what it set. A malformed entry or an unknown name is an error naming it (the
/// node then refuses to start) where `FailScenario::setup` would panic. Without the
/// feature a set `FAILPOINTS` is an error too: the test asked for faults this build
/// cannot inject, and must not pass as if they had happened.
pub fn configure_from_env() -> Result<Vec<(String, String)>, String> {
    let text = match std::env::var("FAILPOINTS") {
        Ok(t) => t,
        Err(std::env::VarError::NotPresent) => return Ok(Vec::new()),
        Err(e) => return Err(format!("FAILPOINTS: {e}")),
    };
    from_text(&text)
}

#[cfg(feature = "failpoints")]
fn from_text(text: &str) -> Result<Vec<(String, String)>, String> {
    let entries = parse(text)?;
    for (name, actions) in &entries {
        set(name, actions)?;
    }
    Ok(entries)
}

/// Without the feature nothing of the list above is in the build, not even the names.
#[cfg(not(feature = "failpoints"))]
fn from_text(text: &str) -> Result<Vec<(String, String)>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    Err(format!(
        "FAILPOINTS is set ({text:?}), but this build has no failpoints: build with \
         `--features failpoints`, or unset it"
    ))
}

/// `NAME=ACTIONS;…` into its entries; every name must be one of [`NAMES`].
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((name, actions)) = entry.split_once('=') else {
            return Err(format!(
                "FAILPOINTS entry {entry:?} is not NAME=ACTIONS (e.g. log_store::flush=return(EIO))"
            ));
        };
        let name = name.trim();
        known(name)?;
        out.push((name.to_string(), actions.trim().to_string()));
    }
    Ok(out)
}

/// Refuses a name that is no failpoint of ours (a typo would never fire).
pub fn known(name: &str) -> Result<(), String> {
    if NAMES.iter().any(|(n, _)| *n == name) {
        return Ok(());
    }
    let names: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
    Err(format!(
        "no failpoint is named {name:?}; the failpoints are {}",
        names.join(", ")
    ))
}

/// Configures failpoint `name` (one of [`NAMES`]) with `actions`; `off` removes it.
#[cfg(feature = "failpoints")]
pub fn set(name: &str, actions: &str) -> Result<(), String> {
    known(name)?;
    check_returns(actions)?;
    if actions.trim() == "off" {
        fail::remove(name);
    } else {
        fail::cfg(name, actions.trim())
            .map_err(|e| format!("failpoint {name}: {actions:?}: {e}"))?;
    }
    Ok(())
}

/// Every failpoint with its configured actions (`off` when none) and where it is.
#[cfg(feature = "failpoints")]
pub fn list() -> Vec<(&'static str, String, &'static str)> {
    let set = fail::list();
    NAMES
        .iter()
        .map(|&(name, at)| {
            let actions = set
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, a)| a.clone())
                .unwrap_or_else(|| "off".into());
            (name, actions, at)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_errno_asked_for() {
        let e = error_for(Some("ENOSPC"));
        assert_eq!(e.raw_os_error(), Some(28));
        assert_eq!(e.kind(), std::io::ErrorKind::StorageFull);
        assert_eq!(error_for(None).raw_os_error(), Some(EIO));
        assert_eq!(error_for(Some(" eio ")).raw_os_error(), Some(EIO));
        assert_eq!(error_for(Some("30")).raw_os_error(), Some(30));
        assert!(check_returns("50%return(ENOSPC)->sleep(10)").is_ok());
        assert!(check_returns("return").is_ok());
        assert!(check_returns("1*return()").is_ok());
        assert!(check_returns("return(EWHAT)")
            .unwrap_err()
            .contains("is no errno"));
    }

    #[test]
    fn the_env_format_is_checked() {
        assert_eq!(
            parse(" log_store::flush=return(EIO) ; snapshot::install=1*return;").unwrap(),
            vec![
                ("log_store::flush".to_string(), "return(EIO)".to_string()),
                ("snapshot::install".to_string(), "1*return".to_string()),
            ]
        );
        assert!(parse("").unwrap().is_empty());
        assert!(parse("log_store::flush")
            .unwrap_err()
            .contains("NAME=ACTIONS"));
        assert!(parse("log_store::fsync=return")
            .unwrap_err()
            .contains("no failpoint is named"));
    }
}
