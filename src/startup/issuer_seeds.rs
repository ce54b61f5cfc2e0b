//! Issuers seeded from certctl's environment variables at start-up (`CERTCTL_ACME_DIRECTORY_URL`
//! and its companions give `iss-acme`), each only when no issuer has its id: after the first start
//! the issuer belongs to the API, and editing it there is not undone by the next restart. Seeds go
//! through the inventory like any creation (secrets sealed, an audit row by `env-seed`).

use serde_json::{json, Map, Value};

use certctl_actors::domain::audit::AuditActor;
use certctl_actors::domain::resources::issuer::{Issuer, NewIssuer};
use certctl_actors::error::DbError;
use certctl_actors::inventory::Checked;
use certctl_actors::queries::resources::GetResource;
use certctl_actors::Engine;

use crate::settings::Settings;

/// The issuers the settings seed.
fn seeds(settings: &Settings) -> Vec<NewIssuer> {
    let mut seeds = Vec::new();
    if let Some(directory_url) = &settings.acme_directory_url {
        let mut config = Map::new();
        config.insert("directory_url".into(), json!(directory_url));
        for (field, value) in [
            ("email", &settings.acme_email),
            ("challenge_type", &settings.acme_challenge_type),
            ("dns_present_script", &settings.acme_dns_present_script),
            ("dns_cleanup_script", &settings.acme_dns_cleanup_script),
            ("profile", &settings.acme_profile),
        ] {
            if let Some(value) = value {
                config.insert(field.into(), json!(value));
            }
        }
        seeds.push(NewIssuer {
            id: Some("iss-acme".into()),
            name: "ACME".into(),
            issuer_type: "acme".into(),
            config: Value::Object(config),
            enabled: true,
        });
    }
    seeds
}

/// Creates each seeded issuer that does not exist yet. The settings were checked when they were
/// parsed, and the engine runs already: a failure here is logged, not fatal.
pub async fn seed_issuers(engine: &Engine, settings: &Settings) {
    for seed in seeds(settings) {
        let id = seed.id.clone().unwrap_or_default();
        match engine.db().run(GetResource::<Issuer>::new(id.clone())).await {
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => {
                tracing::error!(issuer_id = %id, error = %e, "cannot seed an issuer from the environment");
                continue;
            }
        }
        match engine.inventory().create::<Issuer>(seed, AuditActor::system("env-seed")).await {
            Ok(Checked::Done(_)) => tracing::info!(issuer_id = %id, "seeded an issuer from the environment"),
            Ok(Checked::Invalid(errors)) => {
                let fields: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
                tracing::error!(issuer_id = %id, errors = %fields.join("; "), "the issuer seeded from the environment is invalid");
            }
            Ok(Checked::NothingToChange) => {}
            // Another replica seeded it first.
            Err(DbError::Duplicate { .. }) => {}
            Err(e) => tracing::error!(issuer_id = %id, error = %e, "cannot seed an issuer from the environment"),
        }
    }
}
