//! Many certificate creations in one statement and one commit: the certificate writer's batch.
//!
//! Per row it does what [`CreateCertificate`] does (the row, its target bindings, its audit row),
//! but a conflict on the id or the name skips that row instead of failing the statement
//! (`ON CONFLICT DO NOTHING`); the caller re-runs skipped rows one by one to get their exact
//! error. Any other error (an unknown owner, a bad target id) fails the whole statement, and the
//! caller falls back to single creations so only the bad request fails.

use std::collections::HashMap;

use deadpool_postgres::Client;
use serde::Serialize;
use tokio_postgres::types::Json;

use super::certificates::{certificate_from_row, new_certificate_id, CreateCertificate, COLUMNS, RESOURCE};
use crate::db::DbQuery;
use crate::domain::audit::redact;
use crate::domain::certificate::Certificate;
use crate::error::DbError;
use crate::etag_cache::Table;

/// Creates every certificate of the batch that does not collide with an existing id or name.
/// The output follows the input order: `Some` for a created certificate, `None` for a skipped one.
/// Ids and names must be distinct within the batch (the writer keeps duplicates out).
pub struct CreateCertificates {
    pub items: Vec<CreateCertificate>,
}

/// One input row, as `jsonb_to_recordset` reads it.
#[derive(Debug, Serialize)]
struct Row<'a> {
    id: String,
    name: &'a str,
    common_name: &'a str,
    sans: &'a [String],
    environment: &'a str,
    owner_id: &'a str,
    team_id: &'a str,
    issuer_id: &'a str,
    renewal_policy_id: &'a str,
    certificate_profile_id: Option<&'a str>,
    tags: &'a std::collections::BTreeMap<String, String>,
    target_ids: &'a [String],
    actor: &'a str,
    actor_type: &'static str,
    request_id: Option<&'a str>,
    details: serde_json::Value,
}

impl DbQuery for CreateCertificates {
    type Output = Vec<Option<Certificate>>;
    const NAME: &'static str = "create_certificates";
    const TOUCHES: &'static [Table] = &[Table::Certificates, Table::TargetMappings, Table::Audit];

    async fn run(self, client: &mut Client) -> Result<Vec<Option<Certificate>>, DbError> {
        let rows: Vec<Row<'_>> = self
            .items
            .iter()
            .map(|item| {
                let c = &item.new;
                Row {
                    id: c.id.clone().unwrap_or_else(new_certificate_id),
                    name: &c.name,
                    common_name: &c.common_name,
                    sans: &c.sans,
                    environment: &c.environment,
                    owner_id: &c.owner_id,
                    team_id: &c.team_id,
                    issuer_id: &c.issuer_id,
                    renewal_policy_id: &c.renewal_policy_id,
                    certificate_profile_id: c.certificate_profile_id.as_deref(),
                    tags: &c.tags,
                    target_ids: &c.target_ids,
                    actor: &item.actor.name,
                    actor_type: item.actor.actor_type.as_str(),
                    request_id: item.actor.request_id.as_deref(),
                    details: redact(serde_json::to_value(c).unwrap_or_default()),
                }
            })
            .collect();
        let sql = format!(
            "WITH input AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(id text, name text, common_name text, \
             sans text[], environment text, owner_id text, team_id text, issuer_id text, renewal_policy_id text, \
             certificate_profile_id text, tags jsonb, target_ids text[], actor text, actor_type text, \
             request_id text, details jsonb)), \
             c AS (INSERT INTO managed_certificates (id, name, common_name, sans, environment, owner_id, team_id, \
             issuer_id, renewal_policy_id, certificate_profile_id, tags, status, source) \
             SELECT id, name, common_name, sans, environment, owner_id, team_id, issuer_id, renewal_policy_id, \
             certificate_profile_id, tags, 'Pending', 'API' FROM input ON CONFLICT DO NOTHING RETURNING {COLUMNS}), \
             m AS (INSERT INTO certificate_target_mappings (certificate_id, target_id) \
                   SELECT c.id, t FROM c JOIN input i ON i.id = c.id, unnest(i.target_ids) t), \
             a AS (INSERT INTO audit_events (actor, actor_type, action, resource_type, resource_id, request_id, details) \
                   SELECT i.actor, i.actor_type, 'certificate.create', '{RESOURCE}', c.id, i.request_id, i.details \
                   FROM c JOIN input i ON i.id = c.id) \
             SELECT c.*, i.target_ids FROM c JOIN input i ON i.id = c.id"
        );
        let stmt = client.prepare_cached(&sql).await?;
        let created = client.query(&stmt, &[&Json(&rows)]).await?;
        let mut by_id: HashMap<String, Certificate> = HashMap::with_capacity(created.len());
        for row in &created {
            let certificate = certificate_from_row(row)?;
            by_id.insert(certificate.id.clone(), certificate);
        }
        Ok(rows.iter().map(|row| by_id.remove(&row.id)).collect())
    }
}
