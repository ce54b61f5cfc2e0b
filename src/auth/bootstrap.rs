//! Building the key store at start-up: configured keys (`CERTCTL_API_KEYS_NAMED`,
//! `CERTCTL_AUTH_SECRET`) plus keys stored in the database. With none at all, the embedded
//! deployment generates an admin key, stores only its hash and prints it once with a curl
//! command; a deployment on an external database refuses to start instead (someone else's
//! database is no place to mint credentials silently) unless `CERTCTL_AUTH_TYPE=none`.

use anyhow::{bail, Context as _};

use certctl_actors::agents::registry::AgentRegistry;
use certctl_actors::domain::api_key::ApiKeyRecord;
use certctl_actors::queries::api_keys::{InsertApiKey, ListApiKeys};
use certctl_actors::Db;

use certctl_actors::domain::api_key::{key_hash, to_hex};

use super::keys::{generate_key, KeyStore};
use super::Authenticator;
use crate::settings::{AuthType, Settings};

/// The name of the generated first admin key.
pub const BOOTSTRAP_KEY_NAME: &str = "admin";

/// The API keys the server accepts, before the engine (and its agent registry) is running.
pub enum Keys {
    Store(KeyStore),
    /// `CERTCTL_AUTH_TYPE=none`.
    Disabled,
}

/// Builds the key store, and returns the key it generated, if any; `base_url` and `cacert` go
/// into the first-start banner.
pub async fn key_store(
    settings: &Settings,
    db: &Db,
    base_url: &str,
    cacert: Option<&std::path::Path>,
) -> anyhow::Result<(Keys, Option<String>)> {
    if settings.auth_type == AuthType::None {
        tracing::warn!("authentication is disabled (CERTCTL_AUTH_TYPE=none): anyone who can reach the server can change the inventory");
        return Ok((Keys::Disabled, None));
    }
    let mut store = KeyStore::default();
    for key in settings.configured_keys() {
        store.add_plain(&key.name, &key.key, key.admin, key.read_only);
    }
    let stored = db.run(ListApiKeys).await.context("loading the stored API keys")?;
    for record in &stored {
        store.add_record(record);
    }
    let mut generated = None;
    if store.is_empty() {
        if !settings.embedded_database() {
            bail!(
                "no API keys: set CERTCTL_API_KEYS_NAMED=name:key[:admin|:read] (keys of 16+ characters), \
                 or CERTCTL_AUTH_TYPE=none to run without authentication"
            );
        }
        let key = generate_key()?;
        let record = ApiKeyRecord { name: BOOTSTRAP_KEY_NAME.into(), key_hash: to_hex(&key_hash(&key)), admin: true };
        if !db.run(InsertApiKey(record.clone())).await.context("storing the generated admin key")? {
            bail!("a stored API key named `{BOOTSTRAP_KEY_NAME}` already exists but could not be loaded; check the api_keys table");
        }
        store.add_record(&record);
        print_banner(&key, base_url, cacert);
        generated = Some(key);
    }
    Ok((Keys::Store(store), generated))
}

impl Keys {
    /// The authenticator, once the engine's agent registry exists.
    pub fn into_authenticator(self, agents: AgentRegistry, settings: &Settings) -> Authenticator {
        let store = match self {
            Keys::Disabled => return Authenticator::Disabled,
            Keys::Store(store) => store,
        };
        let bootstrap = settings.agent_bootstrap_token.as_ref().map(|t| key_hash(t.expose()));
        if bootstrap.is_none() {
            tracing::info!("CERTCTL_AGENT_BOOTSTRAP_TOKEN is not set: only admin keys can register agents");
        }
        tracing::info!(keys = store.len(), agents = agents.known(), "authentication enabled");
        Authenticator::ApiKeys { store, agents, bootstrap }
    }
}

/// Prints the generated key once, on stdout, where an operator starting the server sees it.
fn print_banner(key: &str, base_url: &str, cacert: Option<&std::path::Path>) {
    let cacert = cacert.map(|p| format!("--cacert {} ", p.display())).unwrap_or_default();
    println!(
        "\n================================================================================\n\
         certctl generated an admin API key. It is shown only this once; only its hash is stored.\n\n\
         \x20 API key: {key}\n\n\
         Try it:\n\n\
         \x20 curl {cacert}-H \"Authorization: Bearer {key}\" {base_url}/api/v1/certificates\n\n\
         Configure your own keys with CERTCTL_API_KEYS_NAMED=name:key[:admin|:read].\n\
         ================================================================================\n"
    );
}
