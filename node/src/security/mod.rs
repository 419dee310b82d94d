//! Who may do what, decided the same way on every node: API keys and roles ([`keys`]),
//! per-tenant quotas ([`quota`]), the audit trail ([`audit`]), the secret nodes present to
//! each other ([`cluster_secret`]), and the check every request passes through ([`auth`]).

pub mod audit;
pub mod auth;
pub mod cluster_secret;
pub mod keys;
pub mod quota;
