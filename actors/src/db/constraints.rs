//! What a constraint violation means, decided where the schema is known: PostgreSQL names the
//! constraint that refused a row (`managed_certificates_name_key`, `owners_team_id_fkey`…), and
//! this module turns that name into a typed [`Violation`] naming the resource kind and the field,
//! so no caller ever parses a constraint name.
//!
//! Names follow PostgreSQL's defaults (`<table>_pkey`, `<table>_<column>_key`,
//! `<table>_<column>_fkey`, `<table>_<column>_check`) plus the few indexes the migrations name
//! themselves; a name this table does not know still maps to a typed error, with generic words.

/// A foreign key that refused a row: the field that named the missing row, and the rows that
/// refer through this key (what still references a row whose delete it refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForeignKey {
    /// The request field (`owner_id`, `target_ids`).
    pub field: &'static str,
    /// The referring rows, in words (`certificates`).
    pub child: &'static str,
}

/// What a constraint violation means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A row of `kind` with the same `field` exists.
    Duplicate {
        kind: &'static str,
        field: &'static str,
    },
    /// A second active issuance or renewal of one certificate.
    RenewalActive,
    ForeignKey(ForeignKey),
    /// A value outside what the column `field` accepts.
    OutOfRange {
        field: &'static str,
    },
}

/// The tables whose rows the API names, with the word for one row (longest names first, so a
/// prefix such as `certificate_` never shadows `certificate_target_mappings_`).
const TABLES: &[(&str, &str)] = &[
    ("acme_server_accounts", "ACME account"),
    ("certificate_target_mappings", "certificate binding"),
    ("certificate_revocations", "revocation"),
    ("certificate_profiles", "certificate profile"),
    ("certificate_versions", "certificate version"),
    ("discovered_certificates", "discovered certificate"),
    ("managed_certificates", "certificate"),
    ("deployment_targets", "target"),
    ("renewal_policies", "renewal policy"),
    ("discovery_scans", "discovery scan"),
    ("audit_events", "audit event"),
    ("api_keys", "API key"),
    ("issuers", "issuer"),
    ("owners", "owner"),
    ("agents", "agent"),
    ("teams", "team"),
    ("jobs", "job"),
];

/// The words used in a still-referenced message for the rows of a child table.
const CHILDREN: &[(&str, &str)] = &[
    ("managed_certificates", "certificates"),
    ("certificate_target_mappings", "certificates"),
    ("deployment_targets", "targets"),
    ("owners", "owners"),
    ("jobs", "jobs"),
    ("acme_server_accounts", "ACME accounts"),
];

/// The table a constraint belongs to, and the rest of its name (`name_key`, `team_id_fkey`…).
fn split(constraint: &str) -> Option<(&'static str, &'static str, &str)> {
    TABLES.iter().find_map(|(table, word)| {
        constraint.strip_prefix(table).and_then(|rest| rest.strip_prefix('_')).map(|rest| (*table, *word, rest))
    })
}

/// A unique constraint: which kind of row and which of its values is taken.
pub fn unique(constraint: &str) -> Violation {
    if constraint == "jobs_one_active_renewal_idx" {
        return Violation::RenewalActive;
    }
    let Some((_, kind, rest)) = split(constraint) else {
        tracing::warn!(constraint, "a unique constraint this build does not know refused a row");
        return Violation::Duplicate { kind: "resource", field: "unique value" };
    };
    let field = match rest {
        "pkey" => "id",
        "name_key" => "name",
        "api_key_hash_key" | "key_hash_key" => "key",
        "fingerprint_sha256_key" => "fingerprint",
        _ => "unique value",
    };
    Violation::Duplicate { kind, field }
}

/// A foreign key: the request field that referred to a missing row, and the rows of the child
/// table (for a delete refused because they still refer to the row).
pub fn foreign_key(constraint: &str) -> Violation {
    let (table, column) = match split(constraint) {
        Some((table, _, rest)) => (table, rest.strip_suffix("_fkey").unwrap_or(rest)),
        None => ("", ""),
    };
    let field = match (table, column) {
        ("certificate_target_mappings", "target_id") => "target_ids",
        (_, "owner_id") => "owner_id",
        (_, "team_id") => "team_id",
        (_, "issuer_id") => "issuer_id",
        (_, "renewal_policy_id") => "renewal_policy_id",
        (_, "certificate_profile_id") => "certificate_profile_id",
        (_, "agent_id") => "agent_id",
        (_, "certificate_id") => "certificate_id",
        (_, "target_id") => "target_id",
        _ => "body",
    };
    let child = CHILDREN.iter().find(|(name, _)| *name == table).map_or("other resources", |(_, word)| *word);
    Violation::ForeignKey(ForeignKey { field, child })
}

/// A check constraint: the column whose value is outside the accepted ones.
pub fn check(constraint: &str) -> Violation {
    let column = split(constraint).and_then(|(_, _, rest)| rest.strip_suffix("_check"));
    let field = match column {
        Some("renewal_window_days") => "renewal_window_days",
        Some("max_retries") => "max_retries",
        Some("retry_interval_seconds") => "retry_interval_seconds",
        Some("renew_at_fraction") => "renew_at_fraction",
        Some("max_ttl_seconds") => "max_ttl_seconds",
        Some("status") => "status",
        Some("type") => "type",
        _ => "body",
    };
    Violation::OutOfRange { field }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_names_become_kinds_and_fields() {
        assert!(matches!(
            unique("managed_certificates_name_key"),
            Violation::Duplicate { kind: "certificate", field: "name" }
        ));
        assert!(matches!(unique("teams_pkey"), Violation::Duplicate { kind: "team", field: "id" }));
        assert!(matches!(
            unique("deployment_targets_name_key"),
            Violation::Duplicate { kind: "target", field: "name" }
        ));
        assert!(matches!(
            unique("certificate_profiles_name_key"),
            Violation::Duplicate { kind: "certificate profile", .. }
        ));
        assert!(matches!(unique("jobs_one_active_renewal_idx"), Violation::RenewalActive));
        assert!(matches!(unique("mystery"), Violation::Duplicate { kind: "resource", .. }));
        assert!(matches!(
            foreign_key("certificate_target_mappings_target_id_fkey"),
            Violation::ForeignKey(ForeignKey { field: "target_ids", child: "certificates" })
        ));
        assert!(matches!(
            foreign_key("managed_certificates_owner_id_fkey"),
            Violation::ForeignKey(ForeignKey { field: "owner_id", child: "certificates" })
        ));
        assert!(matches!(
            foreign_key("owners_team_id_fkey"),
            Violation::ForeignKey(ForeignKey { child: "owners", .. })
        ));
        assert!(matches!(
            check("renewal_policies_renew_at_fraction_check"),
            Violation::OutOfRange { field: "renew_at_fraction" }
        ));
    }
}
