//! The node's admin operations on keys, quotas and the audit trail. Each is one replicated
//! command (which also appends its audit record), followed by a linearizable read so the
//! answer is what the cluster now holds, whichever node was asked.

use std::time::Duration;

use crate::clock::unix_millis;
use crate::error::NodeError;
use crate::pb;
use crate::security::audit::AuditRecord;
use crate::security::keys::{self, KeyRecord, Role};
use crate::security::quota::{Quota, Tier};
use crate::service::NodeCore;
use crate::store::state_machine::TenantInfo;
use crate::types::{limits, AdminAction, Command, CommandResult, WritesPause};

/// Longest reason a pause of writes may give (it is in every refusal and status frame).
pub const MAX_PAUSE_REASON: usize = 200;
/// What [`NodeCore::annotate`] records: an alert acknowledged, silenced, its silence lifted.
pub const ANNOTATION_KINDS: [&str; 3] = ["alert.ack", "alert.silence", "alert.unsilence"];
/// Longest alert name or note an annotation may carry.
pub const MAX_ANNOTATION: usize = 200;
/// How often the leader looks whether a timed pause of writes has run out.
const PAUSE_EXPIRY_TICK: Duration = Duration::from_millis(250);

/// `now` plus `d` (a key lifetime or grace period, `what`), refused past
/// [`limits::MAX_KEY_DURATION`] and never overflowing.
fn later_by(now: i64, what: &str, d: Duration) -> Result<i64, NodeError> {
    let ms = limits::key_duration_ms(what, d).map_err(NodeError::InvalidInput)?;
    Ok(now.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)))
}

/// A tenant name: the first segment of its keys, so no `/` and nothing invisible.
pub fn validate_tenant(tenant: &str) -> Result<(), NodeError> {
    if tenant.is_empty()
        || tenant.len() > 128
        || tenant.contains('/')
        || tenant.chars().any(char::is_control)
    {
        return Err(NodeError::InvalidInput(format!(
            "bad tenant {tenant:?}: a tenant is the part of a key before its first `/`, 1-128 characters"
        )));
    }
    Ok(())
}

impl NodeCore {
    async fn admin(&self, actor: &str, at_ms: i64, action: AdminAction) -> Result<(), NodeError> {
        let command = Command::Admin {
            actor: actor.to_string(),
            at_ms,
            action,
        };
        match self.propose(command).await? {
            CommandResult::Done => Ok(()),
            other => Err(NodeError::Internal(format!("unexpected result {other:?}"))),
        }
    }

    fn find_key(&self, id: &str) -> Result<KeyRecord, NodeError> {
        self.reader()
            .api_keys()
            .map_err(|e| NodeError::Internal(e.to_string()))?
            .into_iter()
            .find(|k| k.id == id)
            .ok_or_else(|| NodeError::NotFound(format!("no API key with id {id:?}")))
    }

    /// Creates a key and returns it with its secret (the only time the secret exists
    /// outside the caller).
    pub async fn create_key(
        &self,
        actor: &str,
        role: Role,
        tenants: Vec<String>,
        expires_in: Option<Duration>,
    ) -> Result<(KeyRecord, String), NodeError> {
        for t in &tenants {
            validate_tenant(t)?;
        }
        if role == Role::Metrics && !tenants.is_empty() {
            return Err(NodeError::InvalidInput(
                "a metrics key reads /metrics and /sd/prometheus only, never tenant data: \
                 create it without --tenant"
                    .into(),
            ));
        }
        let now = unix_millis();
        let expires_ms = expires_in
            .map(|d| later_by(now, "the key's lifetime", d))
            .transpose()?;
        let new = keys::generate();
        let record = KeyRecord {
            id: new.id.clone(),
            hash: new.hash,
            role,
            tenants,
            created_ms: now,
            expires_ms,
            revoked_ms: None,
            last_used_ms: None,
            successor: None,
        };
        self.admin(actor, now, AdminAction::CreateKey(record))
            .await?;
        self.read_barrier(false).await?;
        Ok((self.find_key(&new.id)?, new.secret))
    }

    /// Replaces key `id` with a new one of the same role and tenants; the old one keeps
    /// working for `grace`. Returns (new, old, new secret).
    pub async fn rotate_key(
        &self,
        actor: &str,
        id: &str,
        grace: Duration,
    ) -> Result<(KeyRecord, KeyRecord, String), NodeError> {
        let now = unix_millis();
        let new = keys::generate();
        let action = AdminAction::RotateKey {
            old_id: id.to_string(),
            new_id: new.id.clone(),
            new_hash: new.hash,
            grace_until_ms: later_by(now, "the grace period", grace)?,
        };
        self.admin(actor, now, action).await?;
        self.read_barrier(false).await?;
        Ok((self.find_key(&new.id)?, self.find_key(id)?, new.secret))
    }

    pub async fn revoke_key(&self, actor: &str, id: &str) -> Result<KeyRecord, NodeError> {
        let action = AdminAction::RevokeKey { id: id.to_string() };
        self.admin(actor, unix_millis(), action).await?;
        self.read_barrier(false).await?;
        self.find_key(id)
    }

    pub async fn list_keys(&self) -> Result<Vec<KeyRecord>, NodeError> {
        self.read_barrier(false).await?;
        self.reader()
            .api_keys()
            .map_err(|e| NodeError::Internal(e.to_string()))
    }

    /// Sets a tenant's limits: the tier's defaults, each overridden when given; a limit of
    /// 0 is zero (every write that adds a key or a byte is refused), not "the default".
    pub async fn set_quota(
        &self,
        actor: &str,
        tenant: &str,
        tier: Tier,
        max_keys: Option<u64>,
        max_bytes: Option<u64>,
    ) -> Result<TenantInfo, NodeError> {
        validate_tenant(tenant)?;
        let defaults = tier.quota();
        let quota = Quota {
            tier,
            max_keys: max_keys.unwrap_or(defaults.max_keys),
            max_bytes: max_bytes.unwrap_or(defaults.max_bytes),
        };
        let action = AdminAction::SetQuota {
            tenant: tenant.to_string(),
            quota,
        };
        self.admin(actor, unix_millis(), action).await?;
        self.tenant(tenant).await
    }

    pub async fn reset_quota(&self, actor: &str, tenant: &str) -> Result<TenantInfo, NodeError> {
        validate_tenant(tenant)?;
        let action = AdminAction::ResetQuota {
            tenant: tenant.to_string(),
        };
        self.admin(actor, unix_millis(), action).await?;
        self.tenant(tenant).await
    }

    pub async fn tenants(&self) -> Result<Vec<TenantInfo>, NodeError> {
        self.read_barrier(false).await?;
        self.reader()
            .tenants()
            .map_err(|e| NodeError::Internal(e.to_string()))
    }

    async fn tenant(&self, tenant: &str) -> Result<TenantInfo, NodeError> {
        Ok(self
            .tenants()
            .await?
            .into_iter()
            .find(|t| t.tenant == tenant)
            .unwrap_or(TenantInfo {
                tenant: tenant.to_string(),
                quota: None,
                usage: Default::default(),
            }))
    }

    /// Pauses client writes on every node (maintenance mode) until a resume, or for `for_`
    /// (then the leader resumes them by itself at the proposer's clock plus `for_`).
    pub async fn pause_writes(
        &self,
        actor: &str,
        reason: &str,
        for_: Option<Duration>,
    ) -> Result<WritesPause, NodeError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(NodeError::InvalidInput(
                "a pause of writes needs a reason (--reason TEXT): it is shown with every refused write".into(),
            ));
        }
        if reason.chars().count() > MAX_PAUSE_REASON || reason.chars().any(char::is_control) {
            return Err(NodeError::InvalidInput(format!(
                "the reason must be one line of at most {MAX_PAUSE_REASON} characters"
            )));
        }
        if for_.is_some_and(|d| d.is_zero()) {
            return Err(NodeError::InvalidInput(
                "--for must be longer than 0 (e.g. 30m); leave it out to pause until a resume"
                    .into(),
            ));
        }
        let now = unix_millis();
        let until_ms = for_.map(|d| later_by(now, "the pause", d)).transpose()?;
        let action = AdminAction::PauseWrites {
            reason: reason.to_string(),
            until_ms,
        };
        self.admin(actor, now, action).await?;
        self.read_barrier(false).await?;
        self.reader().writes_pause().ok_or_else(|| {
            NodeError::Internal("the pause was applied but is not in the state".into())
        })
    }

    /// Ends a pause of writes; returns the pause it ended.
    pub async fn resume_writes(&self, actor: &str) -> Result<WritesPause, NodeError> {
        self.read_barrier(false).await?;
        let Some(pause) = self.reader().writes_pause() else {
            return Err(NodeError::Rejected("writes are not paused".into()));
        };
        let action = AdminAction::ResumeWrites { ending_since: None };
        self.admin(actor, unix_millis(), action).await?;
        self.read_barrier(false).await?;
        Ok(pause)
    }

    /// On the leader: ends `pause` if its time is up by this node's clock, as a replicated
    /// entry, so every node stops refusing at the same log index.
    pub(crate) async fn end_expired_pause(&self, pause: &WritesPause) -> Result<(), NodeError> {
        let now = unix_millis();
        if !pause.expired(now) {
            return Ok(());
        }
        let action = AdminAction::ResumeWrites {
            ending_since: Some(pause.since_ms),
        };
        self.admin("auto-resume", now, action).await
    }

    /// Resumes a timed pause of writes when it runs out, with no operator action: the
    /// leader looks every [`PAUSE_EXPIRY_TICK`].
    pub fn spawn_writes_expiry(&self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        let core = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PAUSE_EXPIRY_TICK);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return,
                }
                if !core.is_leader() {
                    continue;
                }
                let Some(pause) = core.reader().writes_pause() else {
                    continue;
                };
                if let Err(e) = core.end_expired_pause(&pause).await {
                    tracing::warn!(error = %e, "could not resume writes at the end of their pause; will retry");
                }
            }
        });
    }

    /// Records an operator's note on an alert (an ack, a silence, its lifting) in the
    /// replicated audit trail, so every console and incident report sees it; returns the
    /// record's time. Unlike [`NodeCore::record_audit`] a failure is returned: the caller's
    /// note was not recorded.
    pub async fn annotate(
        &self,
        actor: &str,
        kind: &str,
        subject: &str,
        until_ms: Option<i64>,
        note: &str,
    ) -> Result<i64, NodeError> {
        if !ANNOTATION_KINDS.contains(&kind) {
            return Err(NodeError::InvalidInput(format!(
                "unknown annotation {kind:?}: one of {}",
                ANNOTATION_KINDS.join(", ")
            )));
        }
        let one_line = |what: &str, text: &str, empty_ok: bool| {
            if (!empty_ok && text.trim().is_empty())
                || text.chars().count() > MAX_ANNOTATION
                || text.chars().any(char::is_control)
            {
                Err(NodeError::InvalidInput(format!(
                    "the {what} must be one line of {} to {MAX_ANNOTATION} characters",
                    u8::from(!empty_ok)
                )))
            } else {
                Ok(())
            }
        };
        one_line("alert", subject, false)?;
        one_line("note", note, true)?;
        let now = unix_millis();
        let mut args = format!("alert={:?}", subject.trim());
        if let Some(until) = until_ms {
            args.push_str(&format!(" until={}", crate::types::utc_text(until)));
        }
        if !note.trim().is_empty() {
            args.push_str(&format!(" note={:?}", note.trim()));
        }
        let command = Command::Audit {
            actor: actor.to_string(),
            at_ms: now,
            action: kind.to_string(),
            args,
            result: "ok".into(),
        };
        self.propose(command).await?;
        Ok(now)
    }

    /// Records that `actor` verified a backup file (its payload's checksum, applied index
    /// and file name); answers whether it is the cluster's last backup (which is then no
    /// longer "not verified") and the record's time.
    pub async fn record_backup_verified(
        &self,
        actor: &str,
        payload_sha256: &str,
        applied_index: u64,
        file: &str,
    ) -> Result<(bool, i64), NodeError> {
        let sha = payload_sha256.trim().to_ascii_lowercase();
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NodeError::InvalidInput(format!(
                "payload_sha256 must be the manifest's 64 hex digits, not {payload_sha256:?}"
            )));
        }
        // The name only, one line: the audit trail is no place for a path or a control
        // character.
        let name = file.rsplit('/').next().unwrap_or_default();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(NodeError::InvalidInput(format!(
                "file must be the backup file's name (1 to 200 characters, one line), not {file:?}"
            )));
        }
        let now = unix_millis();
        let action = crate::types::AdminAction::BackupVerified {
            payload_sha256: sha.clone(),
            applied_index,
            file: name.to_string(),
        };
        self.admin(actor, now, action).await?;
        self.read_barrier(false).await?;
        let last = self
            .reader()
            .backup_check()
            .is_some_and(|c| c.payload_sha256.as_deref() == Some(sha.as_str()));
        Ok((last, now))
    }

    pub async fn audit(&self, limit: usize) -> Result<Vec<AuditRecord>, NodeError> {
        self.read_barrier(false).await?;
        self.reader()
            .audit(limit)
            .map_err(|e| NodeError::Internal(e.to_string()))
    }

    /// Records an admin action done outside the state machine (membership, compaction,
    /// backup). A failure to record is logged, not returned: the action itself happened.
    pub async fn record_audit(&self, actor: &str, action: &str, args: String, result: String) {
        let command = Command::Audit {
            actor: actor.to_string(),
            at_ms: unix_millis(),
            action: action.to_string(),
            args,
            result,
        };
        if let Err(e) = self.propose(command).await {
            tracing::warn!(action, error = %e, "could not record an audit entry");
        }
    }
}

/// A pause of writes as reported to clients (status frames, `writes` verbs).
pub fn writes_paused(p: &WritesPause) -> pb::WritesPaused {
    pb::WritesPaused {
        by: p.by.clone(),
        since_unix_ms: p.since_ms,
        reason: p.reason.clone(),
        until_unix_ms: p.until_ms,
    }
}

/// A tenant as reported to clients (status frames, `quota` verbs).
pub fn tenant_usage(t: &TenantInfo) -> pb::TenantUsage {
    pb::TenantUsage {
        tenant: t.tenant.clone(),
        tier: t
            .quota
            .map(|q| q.tier.name().to_string())
            .unwrap_or_default(),
        keys: t.usage.keys,
        bytes: t.usage.bytes,
        max_keys: t.quota.map(|q| q.max_keys),
        max_bytes: t.quota.map(|q| q.max_bytes),
        violations: t.usage.violations,
    }
}
