//! Per-tenant quotas. A tenant is the part of a key before its first `/` (`acme/orders/1`
//! belongs to `acme`). Usage is counted in the state machine for every tenant; limits apply
//! once a quota is set, and are checked at apply time so every node decides alike.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tier {
    Free,
    Premium,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Premium => "premium",
        }
    }

    pub fn parse(s: &str) -> Result<Tier, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "free" => Ok(Tier::Free),
            "premium" => Ok(Tier::Premium),
            other => Err(format!("unknown tier {other:?}: expected free or premium")),
        }
    }

    /// The tier's default limits.
    pub fn quota(self) -> Quota {
        match self {
            Tier::Free => Quota {
                tier: self,
                max_keys: 10_000,
                max_bytes: 10 * 1024 * 1024,
            },
            Tier::Premium => Quota {
                tier: self,
                max_keys: 1_000_000,
                max_bytes: 1024 * 1024 * 1024,
            },
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub tier: Tier,
    pub max_keys: u64,
    /// Key plus value bytes.
    pub max_bytes: u64,
}

/// What a tenant holds, and how many writes its quota refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub keys: u64,
    pub bytes: u64,
    pub violations: u64,
}

/// The tenant a key belongs to, if it has one.
pub fn tenant_of(key: &str) -> Option<&str> {
    key.split_once('/')
        .map(|(t, _)| t)
        .filter(|t| !t.is_empty())
}

impl Quota {
    /// Refuses a write that would take `tenant` from `before` to `after` past a limit; a
    /// write that does not grow a figure over its limit (e.g. an overwrite with a smaller
    /// value) is allowed even when the tenant is already over it.
    pub fn check(&self, tenant: &str, before: &Usage, after: &Usage) -> Result<(), String> {
        if after.keys > self.max_keys && after.keys > before.keys {
            return Err(format!(
                "quota exceeded for tenant {tenant:?}: {} keys would pass its limit of {} \
                 ({} in use); delete keys or raise the limit with `opsdeck quota set {tenant} --max-keys N`",
                after.keys, self.max_keys, before.keys
            ));
        }
        if after.bytes > self.max_bytes && after.bytes > before.bytes {
            return Err(format!(
                "quota exceeded for tenant {tenant:?}: {} bytes would pass its limit of {} bytes \
                 ({} in use); delete data or raise the limit with `opsdeck quota set {tenant} --max-bytes N`",
                after.bytes, self.max_bytes, before.bytes
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(keys: u64, bytes: u64) -> Usage {
        Usage {
            keys,
            bytes,
            violations: 0,
        }
    }

    #[test]
    fn tenants_are_the_first_path_segment() {
        assert_eq!(tenant_of("acme/orders/1"), Some("acme"));
        assert_eq!(tenant_of("plain"), None);
        assert_eq!(tenant_of("/x"), None);
    }

    #[test]
    fn a_write_past_a_limit_is_refused_with_the_numbers() {
        let q = Quota {
            tier: Tier::Free,
            max_keys: 2,
            max_bytes: 100,
        };
        assert!(q.check("acme", &usage(1, 50), &usage(2, 100)).is_ok());
        let err = q.check("acme", &usage(2, 100), &usage(2, 101)).unwrap_err();
        assert!(
            err.contains("\"acme\"")
                && err.contains("101 bytes")
                && err.contains("limit of 100")
                && err.contains("100 in use"),
            "{err}"
        );
        let err = q.check("acme", &usage(2, 10), &usage(3, 20)).unwrap_err();
        assert!(
            err.contains("3 keys") && err.contains("limit of 2"),
            "{err}"
        );
        // Shrinking while over the limit is allowed.
        assert!(q.check("acme", &usage(3, 500), &usage(3, 400)).is_ok());
    }

    #[test]
    fn tiers_have_defaults() {
        assert_eq!(Tier::parse("Premium").unwrap().quota().max_keys, 1_000_000);
        assert!(Tier::parse("gold").is_err());
        assert!(Tier::Free.quota().max_bytes < Tier::Premium.quota().max_bytes);
    }
}
