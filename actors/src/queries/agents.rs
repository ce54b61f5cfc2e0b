//! Agent statements: registration, the agent list, retirement, the directory the server loads at
//! start (and refreshes), the heartbeat aggregator's batched flush and the stale-agent sweep.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use tokio_postgres::types::ToSql;

use super::audit::AuditRecord;
use super::paging::{equal_filters, time_page, PageWindow, TimeKeyset, TimePage};
use crate::db::DbQuery;
use crate::domain::agent::{Agent, HostInfo, AGENT_COLUMNS};
use crate::domain::api_key::from_hex;
use crate::domain::audit::AuditActor;
use crate::error::DbError;
use crate::etag_cache::Table;

/// Registers an agent with the hash of its key, and its audit row, in one statement.
pub struct RegisterAgent {
    pub id: String,
    pub name: String,
    pub host: HostInfo,
    /// SHA-256 of the agent's key, lower-case hex.
    pub key_hash: String,
    pub actor: AuditActor,
}

impl DbQuery for RegisterAgent {
    type Output = Agent;
    const NAME: &'static str = "register_agent";
    const TOUCHES: &'static [Table] = &[Table::Agents, Table::Audit];

    async fn run(self, client: &mut Client) -> Result<Agent, DbError> {
        let audit = AuditRecord {
            details: serde_json::json!({ "name": self.name, "hostname": self.host.hostname }),
            actor: self.actor,
            action: "agent.register".into(),
            resource_type: "agent".into(),
        };
        let sql = format!(
            "WITH c AS ( \
               INSERT INTO agents (id, name, api_key_hash, hostname, os, architecture, ip_address, version) \
               VALUES ($1, $2, $3, coalesce($4, ''), coalesce($5, ''), coalesce($6, ''), coalesce($7, ''), \
                       coalesce($8, '')) \
               RETURNING {AGENT_COLUMNS}), \
             a AS ({}) SELECT * FROM c",
            AuditRecord::insert_from("c", 9)
        );
        let stmt = client.prepare_cached(&sql).await?;
        let params = audit.params();
        let h = &self.host;
        let mut all: Vec<&(dyn ToSql + Sync)> =
            vec![&self.id, &self.name, &self.key_hash, &h.hostname, &h.os, &h.architecture, &h.ip_address, &h.version];
        all.extend(params.as_slice());
        Agent::from_row(&client.query_one(&stmt, &all).await?)
    }
}

/// Filters of the agent list.
#[derive(Clone, Debug, Default)]
pub struct AgentFilters {
    pub status: Option<String>,
    pub os: Option<String>,
    pub version: Option<String>,
}

/// One page of agents, oldest first, by `(created_at, id)` keyset or offset.
pub struct ListAgents {
    pub filters: AgentFilters,
    pub window: PageWindow,
}

impl DbQuery for ListAgents {
    type Output = TimePage<Agent>;
    const NAME: &'static str = "list_agents";

    async fn run(self, client: &mut Client) -> Result<TimePage<Agent>, DbError> {
        let f = &self.filters;
        let (mut conditions, mut params) = (Vec::new(), Vec::new());
        equal_filters(&mut conditions, &mut params, &[("status", &f.status), ("os", &f.os), ("version", &f.version)]);
        let keyset = TimeKeyset { table: "agents", columns: AGENT_COLUMNS, descending: false, window: &self.window };
        time_page(client, keyset, conditions, params, Agent::from_row, |a| (a.created_at, a.id.clone())).await
    }
}

/// One agent by id.
pub struct GetAgent {
    pub id: String,
}

impl DbQuery for GetAgent {
    type Output = Option<Agent>;
    const NAME: &'static str = "get_agent";

    async fn run(self, client: &mut Client) -> Result<Option<Agent>, DbError> {
        let stmt = client.prepare_cached(&format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1")).await?;
        client.query_opt(&stmt, &[&self.id]).await?.as_ref().map(Agent::from_row).transpose()
    }
}

/// What retiring found.
#[derive(Debug)]
pub enum Retired {
    /// Retired now; with the number of its jobs cancelled.
    Done(Box<Agent>, i64),
    AlreadyRetired(Box<Agent>),
    NotFound,
}

/// Retires an agent: it is refused from then on (410), its open deployment jobs are cancelled and
/// the CSR jobs it held are free for another agent of the same certificate. One statement, with
/// its audit row.
pub struct RetireAgent {
    pub id: String,
    pub reason: String,
    pub actor: AuditActor,
}

impl DbQuery for RetireAgent {
    type Output = Retired;
    const NAME: &'static str = "retire_agent";
    const TOUCHES: &'static [Table] = &[Table::Agents, Table::Jobs, Table::Audit];

    async fn run(self, client: &mut Client) -> Result<Retired, DbError> {
        let audit = AuditRecord {
            details: serde_json::json!({ "reason": self.reason }),
            actor: self.actor,
            action: "agent.retire".into(),
            resource_type: "agent".into(),
        };
        let sql = format!(
            "WITH c AS ( \
               UPDATE agents SET status = 'Retired', retired_at = now(), retired_reason = $2, updated_at = now() \
                WHERE id = $1 AND retired_at IS NULL RETURNING {AGENT_COLUMNS}), \
             cancelled AS ( \
               UPDATE jobs j SET status = 'Cancelled', retry_at = NULL, lease_expires_at = NULL, completed_at = now(), \
                      last_error = 'the agent was retired', updated_at = now() \
                 FROM c WHERE j.agent_id = c.id AND j.type = 'Deployment' \
                  AND (j.status IN ('Pending', 'Running') OR (j.status = 'Failed' AND j.retry_at IS NOT NULL)) \
               RETURNING j.id), \
             freed AS ( \
               UPDATE jobs j SET agent_id = NULL, lease_expires_at = NULL \
                 FROM c WHERE j.agent_id = c.id AND j.status = 'AwaitingCSR'), \
             a AS ({}) SELECT c.*, (SELECT count(*) FROM cancelled) FROM c",
            AuditRecord::insert_from("c", 3)
        );
        let stmt = client.prepare_cached(&sql).await?;
        let params = audit.params();
        let mut all: Vec<&(dyn ToSql + Sync)> = vec![&self.id, &self.reason];
        all.extend(params.as_slice());
        if let Some(row) = client.query_opt(&stmt, &all).await? {
            let cancelled: i64 = row.try_get(14)?;
            return Ok(Retired::Done(Box::new(Agent::from_row(&row)?), cancelled));
        }
        Ok(match (GetAgent { id: self.id }).run(client).await? {
            Some(agent) => Retired::AlreadyRetired(Box::new(agent)),
            None => Retired::NotFound,
        })
    }
}

/// An agent as the in-memory directory knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryEntry {
    pub id: String,
    /// SHA-256 of its key, raw.
    pub key_hash: [u8; 32],
    pub retired: bool,
}

fn entry_from_row(row: &tokio_postgres::Row) -> Result<Option<DirectoryEntry>, DbError> {
    let hash: String = row.try_get(1)?;
    let Some(key_hash) = from_hex(&hash) else { return Ok(None) };
    Ok(Some(DirectoryEntry { id: row.try_get(0)?, key_hash, retired: row.try_get(2)? }))
}

/// Agents registered or retired since `since` (every agent when `None`), for the directory,
/// and the database's clock when it read them (where the next refresh starts).
pub struct LoadAgentDirectory {
    pub since: Option<DateTime<Utc>>,
}

/// What a directory load read.
pub struct DirectoryLoad {
    pub entries: Vec<DirectoryEntry>,
    /// `statement_timestamp()` of the read.
    pub read_at: DateTime<Utc>,
}

impl DbQuery for LoadAgentDirectory {
    type Output = DirectoryLoad;
    const NAME: &'static str = "load_agent_directory";

    async fn run(self, client: &mut Client) -> Result<DirectoryLoad, DbError> {
        let stmt = client
            .prepare_cached(
                "SELECT id, api_key_hash, retired_at IS NOT NULL, statement_timestamp() FROM agents \
                  WHERE $1::timestamptz IS NULL OR registered_at >= $1 OR retired_at >= $1",
            )
            .await?;
        let rows = client.query(&stmt, &[&self.since]).await?;
        let read_at = match rows.first() {
            Some(row) => row.try_get(3)?,
            None => client.query_one("SELECT statement_timestamp()", &[]).await?.try_get(0)?,
        };
        let entries = rows.iter().filter_map(|r| entry_from_row(r).ok().flatten()).collect();
        Ok(DirectoryLoad { entries, read_at })
    }
}

/// One agent by the hash of its key (a key the directory does not know yet: registered on
/// another replica since the last refresh).
pub struct FindAgentByKey {
    pub key_hash: String,
}

impl DbQuery for FindAgentByKey {
    type Output = Option<DirectoryEntry>;
    const NAME: &'static str = "find_agent_by_key";

    async fn run(self, client: &mut Client) -> Result<Option<DirectoryEntry>, DbError> {
        let stmt = client
            .prepare_cached("SELECT id, api_key_hash, retired_at IS NOT NULL FROM agents WHERE api_key_hash = $1")
            .await?;
        match client.query_opt(&stmt, &[&self.key_hash]).await? {
            Some(row) => entry_from_row(&row),
            None => Ok(None),
        }
    }
}

/// The latest beat of one agent, waiting for the next flush.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Beat {
    pub at: DateTime<Utc>,
    pub host: HostInfo,
}

/// Writes a batch of beats in one statement: each agent's heartbeat time (never moved back),
/// what it said about its host, and Online again if it was Offline. Retired agents are left
/// alone. Rows are locked in id order, so concurrent flushes from several replicas cannot deadlock.
pub struct FlushHeartbeats {
    /// Sorted by agent id.
    pub beats: Vec<(String, Beat)>,
}

impl DbQuery for FlushHeartbeats {
    type Output = u64;
    const NAME: &'static str = "flush_heartbeats";
    const TOUCHES: &'static [Table] = &[Table::Agents];

    fn changed(output: &Self::Output) -> bool {
        *output > 0
    }

    async fn run(self, client: &mut Client) -> Result<u64, DbError> {
        let n = self.beats.len();
        let (mut ids, mut ats) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut hostnames, mut oses, mut archs, mut ips, mut versions) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (id, beat) in self.beats {
            ids.push(id);
            ats.push(beat.at);
            hostnames.push(beat.host.hostname);
            oses.push(beat.host.os);
            archs.push(beat.host.architecture);
            ips.push(beat.host.ip_address);
            versions.push(beat.host.version);
        }
        let stmt = client
            .prepare_cached(
                "UPDATE agents a SET last_heartbeat_at = b.at, \
                        status = CASE WHEN a.status = 'Offline' THEN 'Online' ELSE a.status END, \
                        hostname = coalesce(b.hostname, a.hostname), os = coalesce(b.os, a.os), \
                        architecture = coalesce(b.architecture, a.architecture), \
                        ip_address = coalesce(b.ip_address, a.ip_address), version = coalesce(b.version, a.version), \
                        updated_at = now() \
                   FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], \
                               $7::text[]) AS b(id, at, hostname, os, architecture, ip_address, version) \
                  WHERE a.id = b.id AND a.retired_at IS NULL \
                    AND (a.last_heartbeat_at IS NULL OR a.last_heartbeat_at < b.at)",
            )
            .await?;
        Ok(client.execute(&stmt, &[&ids, &ats, &hostnames, &oses, &archs, &ips, &versions]).await?)
    }
}

/// What the stale-agent sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StaleSweep {
    pub marked_offline: i64,
    /// Deployment jobs they were running, back to Pending for when they return.
    pub jobs_released: i64,
    /// CSR jobs they held, free for another agent of the same certificate.
    pub csr_jobs_freed: i64,
}

/// Marks Online agents silent for longer than `offline_after` Offline, in one statement, and
/// hands back the work they held.
pub struct MarkStaleAgents {
    pub now: DateTime<Utc>,
    pub offline_after: Duration,
}

impl DbQuery for MarkStaleAgents {
    type Output = StaleSweep;
    const NAME: &'static str = "mark_stale_agents";
    const TOUCHES: &'static [Table] = &[Table::Agents, Table::Jobs, Table::Audit];

    fn changed(output: &Self::Output) -> bool {
        output.marked_offline > 0
    }

    async fn run(self, client: &mut Client) -> Result<StaleSweep, DbError> {
        let stmt = client
            .prepare_cached(
                "WITH stale AS ( \
                   UPDATE agents SET status = 'Offline', updated_at = now() \
                    WHERE status = 'Online' \
                      AND coalesce(last_heartbeat_at, registered_at) < $1::timestamptz - make_interval(secs => $2) \
                   RETURNING id), \
                 released AS ( \
                   UPDATE jobs j SET status = 'Pending', attempts = greatest(j.attempts - 1, 0), started_at = NULL, \
                          lease_expires_at = NULL, updated_at = now() \
                     FROM stale s WHERE j.agent_id = s.id AND j.status = 'Running' AND j.type = 'Deployment' \
                   RETURNING j.id), \
                 freed AS ( \
                   UPDATE jobs j SET agent_id = NULL, lease_expires_at = NULL \
                     FROM stale s WHERE j.agent_id = s.id AND j.status = 'AwaitingCSR' RETURNING j.id), \
                 audited AS ( \
                   INSERT INTO audit_events (actor, actor_type, action, resource_type, resource_id, details) \
                   SELECT 'agent-health-check', 'system', 'agent.offline', 'agent', s.id, \
                          jsonb_build_object('offline_after_seconds', $2) FROM stale s) \
                 SELECT (SELECT count(*) FROM stale), (SELECT count(*) FROM released), (SELECT count(*) FROM freed)",
            )
            .await?;
        let row = client.query_one(&stmt, &[&self.now, &self.offline_after.as_secs_f64()]).await?;
        Ok(StaleSweep {
            marked_offline: row.try_get(0)?,
            jobs_released: row.try_get(1)?,
            csr_jobs_freed: row.try_get(2)?,
        })
    }
}
