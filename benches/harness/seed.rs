//! Managed certificates for the scenario benches, seeded with one set-based
//! `INSERT … SELECT … FROM generate_series` per chunk of 100,000 rows (a million rows show
//! progress, and no single statement runs for minutes), shaped by each bench's expiry, `renew_at`
//! and creation-time expressions.

use std::time::Instant;

use super::server::BenchServer;

/// What the seeded certificates look like. The `*_at` fields are SQL expressions over the series
/// number `g` (1..=count).
pub struct Certificates<'a> {
    /// Ids are `mc-<id_prefix>-<g>`.
    pub id_prefix: &'a str,
    /// Names are `<name_prefix>-<g>`, common names and the one SAN `<name_prefix>-<g>.example.com`.
    pub name_prefix: &'a str,
    /// The owner (of team `t-platform`).
    pub owner: &'a str,
    pub expires_at: &'a str,
    pub renew_at: &'a str,
    /// `None`: the column default (the time of the insert).
    pub created_at: Option<&'a str>,
    /// `VACUUM ANALYZE` afterwards (all-visible pages, as on a settled database) rather than
    /// `ANALYZE` alone.
    pub vacuum: bool,
}

const CHUNK: i64 = 100_000;

/// Seeds `count` Active certificates shaped by `shape` (ids already there are skipped).
pub async fn certificates(server: &BenchServer, count: i64, shape: Certificates<'_>) {
    let db = server.database().await;
    let Certificates { id_prefix, name_prefix, owner, expires_at, renew_at, created_at, vacuum } = shape;
    let created_at = created_at.unwrap_or("now()");
    let statement = format!(
        "INSERT INTO managed_certificates (id, name, common_name, sans, environment, owner_id, team_id, issuer_id, \
         renewal_policy_id, status, expires_at, renew_at, created_at) \
         SELECT 'mc-{id_prefix}-' || g, '{name_prefix}-' || g, '{name_prefix}-' || g || '.example.com', \
                ARRAY['{name_prefix}-' || g || '.example.com'], 'production', '{owner}', 't-platform', 'iss-local', \
                'rp-standard', 'Active', {expires_at}, {renew_at}, {created_at} \
           FROM generate_series($1::bigint, $2::bigint) g ON CONFLICT DO NOTHING"
    );
    let started = Instant::now();
    let mut from = 1i64;
    while from <= count {
        let to = (from + CHUNK - 1).min(count);
        db.execute(&statement, &[&from, &to]).await.expect("seeding certificates");
        println!("  seeded {to}/{count} certificates ({:.1} s)", started.elapsed().as_secs_f64());
        from = to + 1;
    }
    let maintenance = if vacuum { "VACUUM ANALYZE managed_certificates" } else { "ANALYZE managed_certificates" };
    db.batch_execute(maintenance).await.expect("analyzing the seeded certificates");
}
