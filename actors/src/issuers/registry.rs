//! One connector per issuer id, built from the issuer's row (its sealed secrets opened) and
//! checked against the row again after [`CACHE_TTL`], so an edited config takes effect within
//! it; an unchanged row keeps its connector, and so a remote CA's pooled connections. A local
//! issuer's CA is created on first use: generated on a blocking thread, its key sealed under the
//! sealing key, and stored with `ON CONFLICT DO NOTHING`, so when two replicas race, both end up
//! signing with the one stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::connectors::{build_remote, ConnectorContext};
use super::local::LocalIssuer;
use super::sealed_config::open_config;
use super::{Connector, ErrorClass, IssueFailure};
use crate::crypto::key_algorithm::KeyAlgorithm;
use crate::crypto::local_ca::LocalCa;
use crate::crypto::seal::SealingKey;
use crate::db::Db;
use crate::queries::issuer_config::LoadIssuerConfig;
use crate::queries::secrets::{InitIssuerCa, LoadIssuerCa, StoredCa};

/// How long a built connector is reused before the issuer's row is read again.
pub const CACHE_TTL: Duration = Duration::from_secs(30);

/// Where local issuers get their CA. `Debug` never shows the key.
#[derive(Clone)]
pub enum CaSource {
    /// Generated once per issuer (of this key algorithm unless the issuer's config names one
    /// as `key_algorithm`) and stored sealed in the database.
    Generate(KeyAlgorithm),
    /// A sub-CA from `CERTCTL_CA_CERT_PATH` / `CERTCTL_CA_KEY_PATH`: the CA certificate, the
    /// chain above it (the rest of the certificate file) and its key, all PEM.
    Files { cert_pem: String, parents_pem: String, key_pem: String },
}

impl CaSource {
    /// A sub-CA from a certificate file (the CA first, then any chain above it) and its key
    /// file, both PEM, checked now as a usable CA; the error says why not.
    pub fn from_files(cert_pem: &str, key_pem: &str) -> Result<CaSource, String> {
        let end = "-----END CERTIFICATE-----";
        let split = cert_pem.find(end).map(|i| i + end.len()).unwrap_or(cert_pem.len());
        let (first, parents) = cert_pem.split_at(split);
        let first = format!("{}\n", first.trim());
        let parents = parents.trim();
        let parents = if parents.is_empty() { String::new() } else { format!("{parents}\n") };
        LocalCa::from_pem(&first, key_pem, &parents).map_err(|e| e.to_string())?;
        Ok(CaSource::Files { cert_pem: first, parents_pem: parents, key_pem: key_pem.to_string() })
    }
}

/// A connector as the registry keeps it.
#[derive(Clone)]
pub struct IssuerEntry {
    pub connector: Connector,
    /// The issuer's `poll_max_wait_seconds` (the first link of the poll budget chain).
    pub poll_max_wait: Option<Duration>,
}

/// A built connector, when its row was last read, and the row it was built from.
struct Built {
    checked: Instant,
    issuer_type: String,
    config: serde_json::Value,
    entry: IssuerEntry,
}

impl std::fmt::Debug for CaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaSource::Generate(algorithm) => f.debug_tuple("Generate").field(algorithm).finish(),
            CaSource::Files { .. } => f.write_str("Files { key_pem: *** }"),
        }
    }
}

pub struct IssuerRegistry {
    db: Db,
    sealing: Arc<SealingKey>,
    ca_source: CaSource,
    /// What remote connectors are built with (database, sealing key, HTTP timeouts).
    context: ConnectorContext,
    cache: Mutex<HashMap<String, Built>>,
    /// CAs by issuer id: they never change once stored.
    cas: Mutex<HashMap<String, Arc<LocalCa>>>,
    /// One CA creation at a time in this process.
    creating: tokio::sync::Mutex<()>,
}

impl IssuerRegistry {
    pub fn new(
        db: Db,
        sealing: Arc<SealingKey>,
        ca_source: CaSource,
        context: ConnectorContext,
    ) -> Arc<IssuerRegistry> {
        Arc::new(IssuerRegistry {
            db,
            sealing,
            ca_source,
            context,
            cache: Mutex::default(),
            cas: Mutex::default(),
            creating: tokio::sync::Mutex::new(()),
        })
    }

    /// The connector for `issuer_id`; a validation failure when it does not exist, is disabled,
    /// or its config cannot make a connector.
    pub async fn get(&self, issuer_id: &str) -> Result<Connector, IssueFailure> {
        Ok(self.entry(issuer_id).await?.connector)
    }

    /// Like [`IssuerRegistry::get`], with the issuer's settings the poller needs.
    pub async fn entry(&self, issuer_id: &str) -> Result<IssuerEntry, IssueFailure> {
        self.lookup(issuer_id)
            .await?
            .ok_or_else(|| IssueFailure::new(ErrorClass::Validation, format!("issuer {issuer_id} does not exist")))
    }

    /// Like [`IssuerRegistry::entry`], with `None` for an issuer that does not exist.
    pub async fn lookup(&self, issuer_id: &str) -> Result<Option<IssuerEntry>, IssueFailure> {
        if let Some(built) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(issuer_id) {
            if built.checked.elapsed() < CACHE_TTL {
                return Ok(Some(built.entry.clone()));
            }
        }
        let Some(row) = self
            .db
            .run(LoadIssuerConfig { id: issuer_id.to_owned() })
            .await
            .map_err(|e| IssueFailure::new(ErrorClass::Internal, format!("reading issuer {issuer_id}: {e}")))?
        else {
            self.cache.lock().unwrap_or_else(|e| e.into_inner()).remove(issuer_id);
            return Ok(None);
        };
        if !row.enabled {
            return Err(IssueFailure::new(ErrorClass::Validation, format!("issuer {issuer_id} is disabled")));
        }
        {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(built) = cache.get_mut(issuer_id) {
                if built.issuer_type == row.issuer_type && built.config == row.config {
                    built.checked = Instant::now();
                    return Ok(Some(built.entry.clone()));
                }
            }
        }
        let config = open_config(&row.config, &self.sealing)
            .map_err(|e| IssueFailure::new(ErrorClass::Internal, format!("issuer {issuer_id}: {e}")))?;
        let connector = match row.issuer_type.as_str() {
            "local" => {
                Connector::InProcess(Arc::new(LocalIssuer::new(self.local_ca(issuer_id, &config).await?, &config)))
            }
            other => Connector::Remote(build_remote(&self.context, issuer_id, other, &config).await?),
        };
        // A number, or a number in a string, as every connector field.
        let poll_max_wait = config
            .get("poll_max_wait_seconds")
            .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())))
            .filter(|s| *s > 0)
            .map(Duration::from_secs);
        let entry = IssuerEntry { connector, poll_max_wait };
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(
            issuer_id.to_owned(),
            Built { checked: Instant::now(), issuer_type: row.issuer_type, config: row.config, entry: entry.clone() },
        );
        Ok(Some(entry))
    }

    /// The CA of local issuer `issuer_id`, loaded, or created and stored on first use.
    pub async fn local_ca(&self, issuer_id: &str, config: &serde_json::Value) -> Result<Arc<LocalCa>, IssueFailure> {
        if let Some(ca) = self.cas.lock().unwrap_or_else(|e| e.into_inner()).get(issuer_id) {
            return Ok(ca.clone());
        }
        let internal = |what: &str, e: &dyn std::fmt::Display| {
            IssueFailure::new(ErrorClass::Internal, format!("{what} for issuer {issuer_id}: {e}"))
        };
        let ca = match &self.ca_source {
            CaSource::Files { cert_pem, parents_pem, key_pem } => {
                LocalCa::from_pem(cert_pem, key_pem, parents_pem).map_err(|e| internal("loading the CA files", &e))?
            }
            CaSource::Generate(default_algorithm) => {
                let _one_at_a_time = self.creating.lock().await;
                let stored = match self.db.run(LoadIssuerCa { issuer_id: issuer_id.to_owned() }).await {
                    Ok(Some(stored)) => stored,
                    Ok(None) => {
                        let algorithm = config
                            .get("key_algorithm")
                            .and_then(|v| v.as_str())
                            .and_then(KeyAlgorithm::parse)
                            .unwrap_or(*default_algorithm);
                        let generated = self.generate(issuer_id, algorithm).await?;
                        self.db
                            .run(InitIssuerCa { issuer_id: issuer_id.to_owned(), ca: generated })
                            .await
                            .map_err(|e| internal("storing the CA", &e))?
                    }
                    Err(e) => return Err(internal("reading the CA", &e)),
                };
                let key = self.sealing.open(&stored.key_sealed).map_err(|e| internal("opening the CA key", &e))?;
                let key_pem = String::from_utf8(key).map_err(|e| internal("the CA key", &e))?;
                LocalCa::from_pem(&stored.cert_pem, &key_pem, &stored.chain_pem)
                    .map_err(|e| internal("the stored CA", &e))?
            }
        };
        let ca = Arc::new(ca);
        self.cas.lock().unwrap_or_else(|e| e.into_inner()).insert(issuer_id.to_owned(), ca.clone());
        Ok(ca)
    }

    async fn generate(&self, issuer_id: &str, algorithm: KeyAlgorithm) -> Result<StoredCa, IssueFailure> {
        let name = format!("certctl {issuer_id} CA");
        let ca = tokio::task::spawn_blocking(move || LocalCa::generate(&name, algorithm))
            .await
            .map_err(|e| IssueFailure::new(ErrorClass::Internal, format!("the CA generation thread failed: {e}")))?
            .map_err(|e| IssueFailure::new(ErrorClass::Internal, format!("generating the CA: {e}")))?;
        tracing::info!(issuer_id, key_algorithm = %algorithm, "generated a new local CA");
        Ok(StoredCa {
            key_algorithm: algorithm.as_str().to_owned(),
            cert_pem: ca.cert_pem().to_owned(),
            chain_pem: String::new(),
            key_sealed: self.sealing.seal(ca.key_pem().as_bytes()),
        })
    }
}
