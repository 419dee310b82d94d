//! API keys. A key is a random 32-byte secret shown once; the ledger stores and replicates
//! only its SHA-256 hash with its id, role, tenants and times.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a key may do. Each role includes the ones ranked below it: metrics < read < write
/// < admin (see [`Role::rank`]).
///
/// The variants' order is their bincode encoding in stored and replicated key records, so
/// a new role is added at the end, never in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// get, scan, status, metrics, watch.
    Read,
    /// read + put/delete in the key's tenants.
    Write,
    /// everything: membership, backup, restore, keys, quotas, compaction.
    Admin,
    /// `GET /metrics` and `GET /sd/prometheus` only: a scrape credential for Prometheus,
    /// which can read no tenant data and no cluster status.
    Metrics,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 4] = [Role::Metrics, Role::Read, Role::Write, Role::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Role::Metrics => "metrics",
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }

    /// Where the role stands: a key passes a check that needs a role ranked at or below its own.
    pub fn rank(self) -> u8 {
        match self {
            Role::Metrics => 0,
            Role::Read => 1,
            Role::Write => 2,
            Role::Admin => 3,
        }
    }

    pub fn parse(s: &str) -> Result<Role, String> {
        let wanted = s.trim().to_ascii_lowercase();
        Role::ALL
            .into_iter()
            .find(|r| r.name() == wanted)
            .ok_or_else(|| {
                format!("unknown role {wanted:?}: expected metrics, read, write or admin")
            })
    }
}

impl PartialOrd for Role {
    fn partial_cmp(&self, other: &Role) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Role {
    fn cmp(&self, other: &Role) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub type KeyHash = [u8; 32];

/// A key as stored in the ledger: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub hash: KeyHash,
    pub role: Role,
    /// Tenants the key may touch; empty means every tenant.
    pub tenants: Vec<String>,
    pub created_ms: i64,
    /// Refused from this time on (set at creation, or as the grace deadline of a rotation).
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
    /// Coarse (nodes report use about once a minute).
    pub last_used_ms: Option<i64>,
    /// The key that replaced this one in a rotation.
    pub successor: Option<String>,
}

impl KeyRecord {
    /// Why the key cannot be used at `now_ms`, if it cannot.
    pub fn refusal(&self, now_ms: i64) -> Option<String> {
        if self.revoked_ms.is_some() {
            return Some(format!("API key {} was revoked", self.id));
        }
        match self.expires_ms {
            Some(at) if now_ms >= at => Some(match &self.successor {
                Some(next) => format!(
                    "API key {} expired at the end of its rotation grace period; use its successor {next}",
                    self.id
                ),
                None => format!("API key {} has expired", self.id),
            }),
            _ => None,
        }
    }

    /// Whether the key may touch `tenant` (None: a key outside any tenant namespace).
    pub fn allows_tenant(&self, tenant: Option<&str>) -> bool {
        self.tenants.is_empty() || tenant.is_some_and(|t| self.tenants.iter().any(|k| k == t))
    }
}

/// Prefix of every secret, so a leaked one is recognisable (secret scanners, grep).
pub const SECRET_PREFIX: &str = "odk_";

/// A freshly generated key: the secret exists only here and in the reply to its creator.
pub struct NewKey {
    pub id: String,
    pub secret: String,
    pub hash: KeyHash,
}

pub fn generate() -> NewKey {
    let mut rng = rand::rng();
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let secret = format!("{SECRET_PREFIX}{}", hex::encode(secret));
    NewKey {
        id: format!("k{:08x}", rng.next_u32()),
        hash: hash_secret(&secret),
        secret,
    }
}

/// A key whose secret an operator provides (e.g. the first admin key, from a secret store).
pub fn from_file(path: &std::path::Path) -> Result<NewKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let secret = text.trim();
    let valid = secret
        .strip_prefix(SECRET_PREFIX)
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if !valid {
        return Err(format!(
            "not an API key: expected {SECRET_PREFIX} followed by 64 hex characters"
        ));
    }
    Ok(NewKey {
        id: format!("k{:08x}", rand::rng().next_u32()),
        hash: hash_secret(secret),
        secret: secret.to_string(),
    })
}

pub fn hash_secret(secret: &str) -> KeyHash {
    Sha256::digest(secret.trim().as_bytes()).into()
}

/// Every key by hash, for the per-request check; rebuilt from the state machine whenever a
/// key is created, rotated or revoked.
#[derive(Clone, Default)]
pub struct KeyRegistry {
    by_hash: Arc<RwLock<HashMap<KeyHash, KeyRecord>>>,
}

impl KeyRegistry {
    pub fn lookup(&self, hash: &KeyHash) -> Option<KeyRecord> {
        let map = self.by_hash.read().unwrap_or_else(|p| p.into_inner());
        map.get(hash).cloned()
    }

    pub fn replace(&self, records: impl IntoIterator<Item = KeyRecord>) {
        let map: HashMap<_, _> = records.into_iter().map(|r| (r.hash, r)).collect();
        *self.by_hash.write().unwrap_or_else(|p| p.into_inner()) = map;
    }

    pub fn len(&self) -> usize {
        self.by_hash.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(expires_ms: Option<i64>, revoked_ms: Option<i64>) -> KeyRecord {
        KeyRecord {
            id: "k1".into(),
            hash: [0; 32],
            role: Role::Write,
            tenants: vec!["acme".into()],
            created_ms: 0,
            expires_ms,
            revoked_ms,
            last_used_ms: None,
            successor: Some("k2".into()),
        }
    }

    #[test]
    fn secrets_are_random_and_only_their_hash_identifies_them() {
        let (a, b) = (generate(), generate());
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with(SECRET_PREFIX) && a.secret.len() == 4 + 64);
        assert_eq!(hash_secret(&a.secret), a.hash);
        assert_eq!(hash_secret(&format!(" {}\n", a.secret)), a.hash);
        assert_ne!(hash_secret(&b.secret), a.hash);
    }

    #[test]
    fn expiry_and_revocation_are_decided_by_the_recorded_times() {
        assert!(record(Some(100), None).refusal(99).is_none());
        let expired = record(Some(100), None).refusal(100).unwrap();
        assert!(expired.contains("successor k2"), "{expired}");
        assert!(record(None, Some(5))
            .refusal(0)
            .unwrap()
            .contains("revoked"));
        assert!(record(None, None).refusal(i64::MAX).is_none());
    }

    #[test]
    fn tenants_limit_what_a_key_touches() {
        let r = record(None, None);
        assert!(r.allows_tenant(Some("acme")));
        assert!(!r.allows_tenant(Some("other")));
        assert!(!r.allows_tenant(None));
        let open = KeyRecord {
            tenants: vec![],
            ..r
        };
        assert!(open.allows_tenant(None) && open.allows_tenant(Some("x")));
    }

    #[test]
    fn roles_parse_and_order() {
        assert_eq!(Role::parse("Admin"), Ok(Role::Admin));
        assert_eq!(Role::parse(" metrics"), Ok(Role::Metrics));
        assert!(Role::parse("root")
            .unwrap_err()
            .contains("metrics, read, write or admin"));
        assert!(
            Role::Metrics < Role::Read && Role::Read < Role::Write && Role::Write < Role::Admin
        );
    }

    #[test]
    fn roles_keep_their_stored_encoding() {
        // Key records are stored and replicated with bincode, which writes the variant's
        // position: a role added in between would turn stored read keys into something else.
        let encoded: Vec<Vec<u8>> = [Role::Read, Role::Write, Role::Admin, Role::Metrics]
            .iter()
            .map(|r| bincode::serialize(r).unwrap())
            .collect();
        assert_eq!(
            encoded,
            [[0, 0, 0, 0], [1, 0, 0, 0], [2, 0, 0, 0], [3, 0, 0, 0]]
        );
    }
}
