//! Issuers seeded from certctl's environment variables at start-up (`CERTCTL_ACME_DIRECTORY_URL`
//! gives `iss-acme`, `CERTCTL_DIGICERT_API_KEY` `iss-digicert`, `CERTCTL_SECTIGO_CUSTOMER_URI`
//! with its login and password `iss-sectigo`, `CERTCTL_VAULT_ADDR` `iss-vault`,
//! `CERTCTL_GLOBALSIGN_API_URL` with its key `iss-globalsign`, `CERTCTL_ENTRUST_API_URL` with its
//! CA id `iss-entrust`, `CERTCTL_STEPCA_URL` `iss-stepca`), each only when no issuer has its id: after the first start
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
        seeds.push(seed("iss-acme", "ACME", "acme", config));
    }
    if let Some(api_key) = &settings.digicert_api_key {
        let mut config = Map::new();
        config.insert("api_key".into(), json!(api_key.expose()));
        put(&mut config, "org_id", settings.digicert_org_id.map(|v| json!(v)));
        put(&mut config, "product_type", settings.digicert_product_type.as_ref().map(|v| json!(v)));
        put(&mut config, "base_url", settings.digicert_base_url.as_ref().map(|v| json!(v)));
        seeds.push(seed("iss-digicert", "DigiCert", "digicert", config));
    }
    if let (Some(uri), Some(login), Some(password)) =
        (&settings.sectigo_customer_uri, &settings.sectigo_login, &settings.sectigo_password)
    {
        let mut config = Map::new();
        config.insert("customer_uri".into(), json!(uri));
        config.insert("login".into(), json!(login.expose()));
        config.insert("password".into(), json!(password.expose()));
        put(&mut config, "org_id", settings.sectigo_org_id.map(|v| json!(v)));
        put(&mut config, "cert_type", settings.sectigo_cert_type.map(|v| json!(v)));
        put(&mut config, "term", settings.sectigo_term.map(|v| json!(v)));
        put(&mut config, "base_url", settings.sectigo_base_url.as_ref().map(|v| json!(v)));
        seeds.push(seed("iss-sectigo", "Sectigo", "sectigo", config));
    }
    if let Some(addr) = &settings.vault_addr {
        let mut config = Map::new();
        config.insert("addr".into(), json!(addr));
        put(&mut config, "token", settings.vault_token.as_ref().map(|v| json!(v.expose())));
        put(&mut config, "mount", settings.vault_mount.as_ref().map(|v| json!(v)));
        put(&mut config, "role", settings.vault_role.as_ref().map(|v| json!(v)));
        put(&mut config, "ttl", settings.vault_ttl.as_ref().map(|v| json!(v)));
        seeds.push(seed("iss-vault", "Vault PKI", "vault", config));
    }
    if let (Some(url), Some(api_key)) = (&settings.globalsign_api_url, &settings.globalsign_api_key) {
        let mut config = Map::new();
        config.insert("api_url".into(), json!(url));
        config.insert("api_key".into(), json!(api_key.expose()));
        put(&mut config, "api_secret", settings.globalsign_api_secret.as_ref().map(|v| json!(v.expose())));
        put(&mut config, "client_cert_path", settings.globalsign_client_cert_path.as_ref().map(|v| json!(v)));
        put(&mut config, "client_key_path", settings.globalsign_client_key_path.as_ref().map(|v| json!(v)));
        put(&mut config, "server_ca_path", settings.globalsign_server_ca_path.as_ref().map(|v| json!(v)));
        seeds.push(seed("iss-globalsign", "GlobalSign Atlas", "globalsign", config));
    }
    if let (Some(url), Some(ca_id)) = (&settings.entrust_api_url, &settings.entrust_ca_id) {
        let mut config = Map::new();
        config.insert("api_url".into(), json!(url));
        config.insert("ca_id".into(), json!(ca_id));
        put(&mut config, "profile_id", settings.entrust_profile_id.as_ref().map(|v| json!(v)));
        put(&mut config, "client_cert_path", settings.entrust_client_cert_path.as_ref().map(|v| json!(v)));
        put(&mut config, "client_key_path", settings.entrust_client_key_path.as_ref().map(|v| json!(v)));
        seeds.push(seed("iss-entrust", "Entrust CA Gateway", "entrust", config));
    }
    if let Some(url) = &settings.stepca_url {
        let mut config = Map::new();
        config.insert("ca_url".into(), json!(url));
        put(&mut config, "root_cert_path", settings.stepca_root_cert.as_ref().map(|v| json!(v)));
        put(&mut config, "provisioner_name", settings.stepca_provisioner.as_ref().map(|v| json!(v)));
        put(&mut config, "provisioner_key_path", settings.stepca_key_path.as_ref().map(|v| json!(v)));
        put(&mut config, "provisioner_password", settings.stepca_password.as_ref().map(|v| json!(v.expose())));
        seeds.push(seed("iss-stepca", "step-ca", "stepca", config));
    }
    seeds
}

fn seed(id: &str, name: &str, issuer_type: &str, config: Map<String, Value>) -> NewIssuer {
    NewIssuer {
        id: Some(id.into()),
        name: name.into(),
        issuer_type: issuer_type.into(),
        config: Value::Object(config),
        enabled: true,
    }
}

fn put(config: &mut Map<String, Value>, field: &str, value: Option<Value>) {
    if let Some(value) = value {
        config.insert(field.into(), value);
    }
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
