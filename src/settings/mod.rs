//! Typed settings, parsed once at start-up from `CERTCTL_*` environment variables (or the matching
//! `--flags`). `certctl-server --help` lists every variable with its default; an invalid value
//! stops start-up with one line naming the variable, the value and what is accepted
//! ([`load`]); `certctl-server config` prints the effective settings with secrets masked.
//!
//! - [`parsers`]: value parsers with operator-readable messages (durations, booleans, key lists).
//! - [`secret`]: a wrapper that never prints its contents.
//! - [`print`]: the masked `config` listing.

pub mod parsers;
pub mod print;
pub mod secret;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use certctl_actors::crypto::key_algorithm::KeyAlgorithm;
use certctl_actors::renewal::dispatcher::KeygenMode;
use clap::{Args, Parser, Subcommand, ValueEnum};

pub use parsers::{CaaIdentities, DatabaseUrl, Environments, NamedKey};
pub use secret::Secret;

/// How durations are written, shown at the end of `--help`.
const DURATION_SYNTAX: &str = "Durations are numbers with units, which may be combined: 250ms, 30s, 5m, 1h30m, 24h \
     (units: ms, s, m, h, d). Loop intervals, timeouts and leases are at least 100ms. Booleans are true or false.";

/// The command line: settings plus an optional subcommand.
#[derive(Parser, Debug)]
#[command(
    name = "certctl-server",
    version,
    args_override_self = true,
    about = "certctl: certificate lifecycle control plane",
    long_about = "certctl keeps the inventory of X.509 certificates in PostgreSQL, renews them before \
                  they expire and hands them to agents. Every setting below is read from its CERTCTL_* \
                  environment variable; a flag of the same name overrides it.",
    after_help = DURATION_SYNTAX,
    after_long_help = DURATION_SYNTAX
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Print the effective settings (secrets masked) and exit; same as the `config` subcommand.
    #[arg(long)]
    pub print_config: bool,
    #[command(flatten)]
    pub settings: Settings,
}

/// Subcommands besides running the server.
#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Print the effective settings (secrets masked) and exit.
    Config,
    /// Print the OpenAPI 3.1 document of the API this build serves and exit.
    Openapi,
}

/// How API requests are authenticated.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    /// `Authorization: Bearer <key>` checked against the configured and stored keys.
    #[value(name = "api-key")]
    ApiKey,
    /// No authentication at all (development only; warned about on every start).
    None,
}

/// Log verbosity.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Log line format.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (for log shippers).
    Json,
    /// Human-readable lines.
    Text,
}

/// Every server setting. Field docs are the `--help` text.
#[derive(Args, Debug, Clone)]
pub struct Settings {
    /// PostgreSQL URL (postgres://user:pass@host:port/db or key=value form). Unset: the server runs
    /// its own PostgreSQL cluster under CERTCTL_DATA_DIR.
    #[arg(long, env = "CERTCTL_DATABASE_URL", value_parser = parsers::database_url, hide_env_values = true)]
    pub database_url: Option<DatabaseUrl>,

    /// Maximum open connections in the pool; about a fifth are kept warm.
    #[arg(long, env = "CERTCTL_DATABASE_MAX_CONNS", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub database_max_conns: u32,

    /// Idle connections above the warm fifth are closed after this long unused.
    #[arg(long, env = "CERTCTL_DATABASE_IDLE_TIMEOUT", default_value = "5m", value_parser = parsers::duration)]
    pub database_idle_timeout: Duration,

    /// Longest wait for a free connection (and for connecting); past it the request gets a 503.
    #[arg(long, env = "CERTCTL_DATABASE_POOL_TIMEOUT", default_value = "5s", value_parser = parsers::duration)]
    pub database_pool_timeout: Duration,

    /// statement_timeout set on every connection.
    #[arg(long, env = "CERTCTL_DATABASE_STATEMENT_TIMEOUT", default_value = "30s", value_parser = parsers::duration)]
    pub database_statement_timeout: Duration,

    /// How long start-up waits for the database to accept connections.
    #[arg(long, env = "CERTCTL_DATABASE_CONNECT_TIMEOUT", default_value = "30s", value_parser = parsers::duration)]
    pub database_connect_timeout: Duration,

    /// PEM bundle of CAs that sign the PostgreSQL server's certificate (TLS is used when the URL's
    /// sslmode is prefer — the default — or require). Unset: the system's trusted roots.
    #[arg(long, env = "CERTCTL_DATABASE_TLS_CA_PATH")]
    pub database_tls_ca_path: Option<PathBuf>,

    /// Verify the PostgreSQL server's certificate. false keeps the encryption but accepts any
    /// certificate (like libpq's sslmode=require); only for trusted networks.
    #[arg(long, env = "CERTCTL_DATABASE_TLS_VERIFY", default_value = "true", value_parser = parsers::boolean, action = clap::ArgAction::Set)]
    pub database_tls_verify: bool,

    /// DB actor instances (one arbiter thread each) sharing the pool; 0 means two per CPU core.
    #[arg(long, env = "CERTCTL_DATABASE_ACTORS", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=64))]
    pub database_actors: u16,

    /// Directory for server state: the self-signed TLS certificate and, with the embedded
    /// PostgreSQL, its cluster and the lock that keeps two servers off the same cluster.
    #[arg(long, env = "CERTCTL_DATA_DIR", default_value = "./certctl-data")]
    pub data_dir: PathBuf,

    /// Directory holding initdb and postgres for the embedded cluster. Unset: PATH, then
    /// `pg_config --bindir`, then /usr/lib/postgresql/*/bin.
    #[arg(long, env = "CERTCTL_POSTGRES_BIN_DIR")]
    pub postgres_bin_dir: Option<PathBuf>,

    /// Address to listen on.
    #[arg(long, env = "CERTCTL_SERVER_HOST", default_value = "127.0.0.1", value_parser = parsers::host)]
    pub server_host: String,

    /// Port to listen on (0 picks a free port).
    #[arg(long, env = "CERTCTL_SERVER_PORT", default_value_t = 8443)]
    pub server_port: u16,

    /// Serve HTTPS (true) or plain HTTP behind a TLS-terminating proxy (false).
    #[arg(long, env = "CERTCTL_SERVER_TLS", default_value = "true", value_parser = parsers::boolean, action = clap::ArgAction::Set)]
    pub server_tls: bool,

    /// PEM certificate chain for HTTPS. Unset (with the key unset): a self-signed ECDSA P-256
    /// certificate is generated in CERTCTL_DATA_DIR/tls on first start.
    #[arg(long, env = "CERTCTL_SERVER_TLS_CERT_PATH")]
    pub server_tls_cert_path: Option<PathBuf>,

    /// PEM private key for HTTPS (PKCS#8, SEC1 or PKCS#1).
    #[arg(long, env = "CERTCTL_SERVER_TLS_KEY_PATH")]
    pub server_tls_key_path: Option<PathBuf>,

    /// HTTP worker threads (0: one per CPU core).
    #[arg(long, env = "CERTCTL_SERVER_WORKERS", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
    pub server_workers: u16,

    /// Largest accepted request body in bytes.
    #[arg(long, env = "CERTCTL_MAX_BODY_SIZE", default_value_t = 1_048_576, value_parser = clap::value_parser!(u64).range(1..=1_073_741_824))]
    pub max_body_size: u64,

    /// Longest time a request body may take to arrive; a slower one gets a 408 and its
    /// connection is closed (a client trickling bytes cannot hold a connection open).
    #[arg(long, env = "CERTCTL_REQUEST_BODY_TIMEOUT", default_value = "15s", value_parser = parsers::positive_duration)]
    pub request_body_timeout: Duration,

    /// Connections one peer address may hold at once; more are closed at once, before TLS, while
    /// the server keeps accepting others. 0: no limit. Behind a load balancer or proxy that
    /// connects from one address, set it above that proxy's connection pool, or to 0.
    #[arg(long, env = "CERTCTL_MAX_CONNECTIONS_PER_PEER", default_value_t = 512, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub max_connections_per_peer: u32,

    /// Authentication of API requests.
    #[arg(long, env = "CERTCTL_AUTH_TYPE", value_enum, default_value = "api-key")]
    pub auth_type: AuthType,

    /// API keys as name:key[:admin|:read], comma-separated: no role reads and changes the inventory,
    /// read only reads, admin does everything. Keys must be at least 16 characters.
    #[arg(long, env = "CERTCTL_API_KEYS_NAMED", value_parser = parsers::named_keys, hide_env_values = true)]
    pub api_keys_named: Option<Secret<Vec<NamedKey>>>,

    /// Legacy certctl API keys, comma-separated; each becomes a non-admin key named legacy-key-N.
    #[arg(long, env = "CERTCTL_AUTH_SECRET", value_parser = parsers::legacy_keys, hide_env_values = true)]
    pub auth_secret: Option<Secret<Vec<NamedKey>>>,

    /// Environment names certificates may carry (comma-separated); an empty environment is always
    /// accepted.
    #[arg(long, env = "CERTCTL_ENVIRONMENTS", default_value = "production,staging,development,test", value_parser = parsers::environments)]
    pub environments: Environments,

    /// Days audit events are kept before the retention actor deletes them (0: keep forever).
    #[arg(long, env = "CERTCTL_AUDIT_RETENTION_DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub audit_retention_days: u32,

    /// Time between audit retention passes.
    #[arg(long, env = "CERTCTL_AUDIT_RETENTION_INTERVAL", default_value = "1h", value_parser = parsers::duration)]
    pub audit_retention_interval: Duration,

    /// Also record successful reads (GET) of audited resources in the audit trail.
    #[arg(long, env = "CERTCTL_AUDIT_READS", default_value = "false", value_parser = parsers::boolean, action = clap::ArgAction::Set)]
    pub audit_reads: bool,

    /// Log verbosity (RUST_LOG, when set, refines it per module).
    #[arg(long, env = "CERTCTL_LOG_LEVEL", value_enum, default_value = "info")]
    pub log_level: LogLevel,

    /// Log line format.
    #[arg(long, env = "CERTCTL_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,

    /// Serve /metrics on this separate plain-HTTP address instead of the API listener.
    #[arg(long, env = "CERTCTL_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Passphrase the local CA keys and server-generated keys are sealed under (AES-256-GCM, key
    /// from PBKDF2-HMAC-SHA256). Every replica needs the same value. Unset with the embedded
    /// PostgreSQL: generated once into CERTCTL_DATA_DIR/secrets; required with CERTCTL_DATABASE_URL.
    #[arg(long, env = "CERTCTL_CONFIG_ENCRYPTION_KEY", value_parser = parsers::encryption_key, hide_env_values = true)]
    pub config_encryption_key: Option<Secret<String>>,

    /// PEM certificate (followed by its chain, if any) of a CA that local issuers sign with as a
    /// sub-CA. Unset: each local issuer generates its own CA once and keeps it sealed in the database.
    #[arg(long, env = "CERTCTL_CA_CERT_PATH")]
    pub ca_cert_path: Option<PathBuf>,

    /// PEM private key of CERTCTL_CA_CERT_PATH (PKCS#8, SEC1 or PKCS#1).
    #[arg(long, env = "CERTCTL_CA_KEY_PATH")]
    pub ca_key_path: Option<PathBuf>,

    /// Key type of generated local CAs (an issuer's config may name its own as key_algorithm):
    /// ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096 or ed25519.
    #[arg(long, env = "CERTCTL_CA_KEY_ALGORITHM", default_value = "ecdsa-p256", value_parser = parsers::key_algorithm)]
    pub ca_key_algorithm: KeyAlgorithm,

    /// Who generates leaf keys: agent (the agent sends a CSR; jobs wait in AwaitingCSR) or server
    /// (the server generates the key and keeps it sealed; agents receive it with the chain, audited).
    #[arg(long, env = "CERTCTL_KEYGEN_MODE", default_value = "agent", value_parser = parsers::keygen_mode)]
    pub keygen_mode: KeygenMode,

    /// Key type of server-generated leaf keys: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072,
    /// rsa-4096 or ed25519 (a profile's allowed_key_algorithms may pick another).
    #[arg(long, env = "CERTCTL_KEYGEN_ALGORITHM", default_value = "ecdsa-p256", value_parser = parsers::key_algorithm)]
    pub keygen_algorithm: KeyAlgorithm,

    /// Issuances the renewal dispatcher runs at once.
    #[arg(long, env = "CERTCTL_RENEWAL_CONCURRENCY", default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub renewal_concurrency: u32,

    /// How long a claimed renewal job is leased; an issuance still running then times out and the
    /// job is retried per its policy.
    #[arg(long, env = "CERTCTL_RENEWAL_LEASE", default_value = "5m", value_parser = parsers::positive_duration)]
    pub renewal_lease: Duration,

    /// First wait before polling an order a remote CA has not issued yet; each later wait is
    /// three times the previous one (±20% jitter), up to CERTCTL_ASYNC_POLL_MAX_INTERVAL. A
    /// Retry-After from the CA wins.
    #[arg(long, env = "CERTCTL_ASYNC_POLL_INITIAL_INTERVAL", default_value = "5s", value_parser = parsers::positive_duration)]
    pub async_poll_initial_interval: Duration,

    /// Longest wait between two polls of an order.
    #[arg(long, env = "CERTCTL_ASYNC_POLL_MAX_INTERVAL", default_value = "5m", value_parser = parsers::positive_duration)]
    pub async_poll_max_interval: Duration,

    /// Poll budget, in seconds, for every remote CA without a budget of its own (the issuer's
    /// poll_max_wait_seconds or its connector's variable); unset: 600. Past the budget the job
    /// goes back to the scheduler and the same order is polled again later.
    #[arg(long, env = "CERTCTL_ASYNC_POLL_MAX_WAIT_SECONDS", value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub async_poll_max_wait_seconds: Option<u64>,

    /// Poll budget, in seconds, for DigiCert issuers without poll_max_wait_seconds.
    #[arg(long, env = "CERTCTL_DIGICERT_POLL_MAX_WAIT_SECONDS", value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub digicert_poll_max_wait_seconds: Option<u64>,

    /// Poll budget, in seconds, for Sectigo issuers without poll_max_wait_seconds.
    #[arg(long, env = "CERTCTL_SECTIGO_POLL_MAX_WAIT_SECONDS", value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub sectigo_poll_max_wait_seconds: Option<u64>,

    /// Poll budget, in seconds, for GlobalSign issuers without poll_max_wait_seconds.
    #[arg(long, env = "CERTCTL_GLOBALSIGN_POLL_MAX_WAIT_SECONDS", value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub globalsign_poll_max_wait_seconds: Option<u64>,

    /// Poll budget, in seconds, for Entrust issuers without poll_max_wait_seconds.
    #[arg(long, env = "CERTCTL_ENTRUST_POLL_MAX_WAIT_SECONDS", value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub entrust_poll_max_wait_seconds: Option<u64>,

    /// Orders the CA poller works on at once per issuer, on each replica.
    #[arg(long, env = "CERTCTL_ASYNC_POLL_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub async_poll_concurrency: u32,

    /// Longest one request to a remote CA may take (connecting included).
    #[arg(long, env = "CERTCTL_CA_REQUEST_TIMEOUT", default_value = "30s", value_parser = parsers::positive_duration)]
    pub ca_request_timeout: Duration,

    /// Address of the plain-HTTP listener that answers ACME http-01 challenges
    /// (`/.well-known/acme-challenge/{token}`), e.g. 0.0.0.0:80, or a high port that a proxy on
    /// port 80 forwards that path to. Unset: no listener (dns-01 only).
    #[arg(long, env = "CERTCTL_ACME_HTTP01_LISTEN")]
    pub acme_http01_listen: Option<std::net::SocketAddr>,

    /// Seeds the issuer `iss-acme` (type acme) with this directory URL at start-up when no issuer
    /// has that id (certctl's variable; edit the issuer through the API afterwards).
    #[arg(long, env = "CERTCTL_ACME_DIRECTORY_URL", value_parser = parsers::http_url)]
    pub acme_directory_url: Option<String>,

    /// Contact e-mail of the seeded ACME issuer's account.
    #[arg(long, env = "CERTCTL_ACME_EMAIL")]
    pub acme_email: Option<String>,

    /// Challenge type of the seeded ACME issuer: http-01 or dns-01.
    #[arg(long, env = "CERTCTL_ACME_CHALLENGE_TYPE", value_parser = ["http-01", "dns-01"])]
    pub acme_challenge_type: Option<String>,

    /// dns-01 hook that creates the TXT record (seeded ACME issuer).
    #[arg(long, env = "CERTCTL_ACME_DNS_PRESENT_SCRIPT")]
    pub acme_dns_present_script: Option<String>,

    /// dns-01 hook that removes the TXT record (seeded ACME issuer).
    #[arg(long, env = "CERTCTL_ACME_DNS_CLEANUP_SCRIPT")]
    pub acme_dns_cleanup_script: Option<String>,

    /// ACME profile the seeded issuer asks for (when the CA offers profiles).
    #[arg(long, env = "CERTCTL_ACME_PROFILE")]
    pub acme_profile: Option<String>,

    /// Seeds `iss-digicert` (type digicert) with this CertCentral API key at start-up when no
    /// issuer has that id (certctl's variables; edit the issuer through the API afterwards).
    #[arg(long, env = "CERTCTL_DIGICERT_API_KEY", value_parser = parsers::secret_text)]
    pub digicert_api_key: Option<Secret<String>>,

    /// Organization id of the seeded DigiCert issuer.
    #[arg(long, env = "CERTCTL_DIGICERT_ORG_ID")]
    pub digicert_org_id: Option<u64>,

    /// Product of the seeded DigiCert issuer (DigiCert's default: ssl_basic).
    #[arg(long, env = "CERTCTL_DIGICERT_PRODUCT_TYPE")]
    pub digicert_product_type: Option<String>,

    /// API base of the seeded DigiCert issuer.
    #[arg(long, env = "CERTCTL_DIGICERT_BASE_URL", value_parser = parsers::http_url)]
    pub digicert_base_url: Option<String>,

    /// Seeds `iss-sectigo` (type sectigo) when this, CERTCTL_SECTIGO_LOGIN and
    /// CERTCTL_SECTIGO_PASSWORD are set and no issuer has that id.
    #[arg(long, env = "CERTCTL_SECTIGO_CUSTOMER_URI")]
    pub sectigo_customer_uri: Option<String>,

    /// API user of the seeded Sectigo issuer.
    #[arg(long, env = "CERTCTL_SECTIGO_LOGIN", value_parser = parsers::secret_text)]
    pub sectigo_login: Option<Secret<String>>,

    /// Password of the seeded Sectigo issuer's API user.
    #[arg(long, env = "CERTCTL_SECTIGO_PASSWORD", value_parser = parsers::secret_text)]
    pub sectigo_password: Option<Secret<String>>,

    /// Organization id of the seeded Sectigo issuer.
    #[arg(long, env = "CERTCTL_SECTIGO_ORG_ID")]
    pub sectigo_org_id: Option<u64>,

    /// Certificate profile id of the seeded Sectigo issuer.
    #[arg(long, env = "CERTCTL_SECTIGO_CERT_TYPE")]
    pub sectigo_cert_type: Option<u64>,

    /// Term in days of the seeded Sectigo issuer (Sectigo's default: 365).
    #[arg(long, env = "CERTCTL_SECTIGO_TERM")]
    pub sectigo_term: Option<u64>,

    /// API base of the seeded Sectigo issuer.
    #[arg(long, env = "CERTCTL_SECTIGO_BASE_URL", value_parser = parsers::http_url)]
    pub sectigo_base_url: Option<String>,

    /// Seeds `iss-vault` (type vault) with this Vault URL when no issuer has that id.
    #[arg(long, env = "CERTCTL_VAULT_ADDR", value_parser = parsers::http_url)]
    pub vault_addr: Option<String>,

    /// Token of the seeded Vault issuer.
    #[arg(long, env = "CERTCTL_VAULT_TOKEN", value_parser = parsers::secret_text)]
    pub vault_token: Option<Secret<String>>,

    /// PKI mount of the seeded Vault issuer (default pki).
    #[arg(long, env = "CERTCTL_VAULT_MOUNT")]
    pub vault_mount: Option<String>,

    /// PKI role of the seeded Vault issuer.
    #[arg(long, env = "CERTCTL_VAULT_ROLE")]
    pub vault_role: Option<String>,

    /// Lifetime the seeded Vault issuer asks for (default 8760h).
    #[arg(long, env = "CERTCTL_VAULT_TTL")]
    pub vault_ttl: Option<String>,

    /// Seeds `iss-globalsign` (type globalsign) when this and CERTCTL_GLOBALSIGN_API_KEY are set
    /// and no issuer has that id.
    #[arg(long, env = "CERTCTL_GLOBALSIGN_API_URL", value_parser = parsers::http_url)]
    pub globalsign_api_url: Option<String>,

    /// API key of the seeded GlobalSign issuer.
    #[arg(long, env = "CERTCTL_GLOBALSIGN_API_KEY", value_parser = parsers::secret_text)]
    pub globalsign_api_key: Option<Secret<String>>,

    /// API secret of the seeded GlobalSign issuer.
    #[arg(long, env = "CERTCTL_GLOBALSIGN_API_SECRET", value_parser = parsers::secret_text)]
    pub globalsign_api_secret: Option<Secret<String>>,

    /// Client certificate (PEM file) of the seeded GlobalSign issuer.
    #[arg(long, env = "CERTCTL_GLOBALSIGN_CLIENT_CERT_PATH")]
    pub globalsign_client_cert_path: Option<String>,

    /// Client key (PEM file) of the seeded GlobalSign issuer.
    #[arg(long, env = "CERTCTL_GLOBALSIGN_CLIENT_KEY_PATH")]
    pub globalsign_client_key_path: Option<String>,

    /// CA certificates (PEM file) trusted for Atlas's server, for the seeded GlobalSign issuer.
    #[arg(long, env = "CERTCTL_GLOBALSIGN_SERVER_CA_PATH")]
    pub globalsign_server_ca_path: Option<String>,

    /// Seeds `iss-entrust` (type entrust) when this and CERTCTL_ENTRUST_CA_ID are set and no
    /// issuer has that id.
    #[arg(long, env = "CERTCTL_ENTRUST_API_URL", value_parser = parsers::http_url)]
    pub entrust_api_url: Option<String>,

    /// Client certificate (PEM file) of the seeded Entrust issuer (CA Gateway uses mutual TLS).
    #[arg(long, env = "CERTCTL_ENTRUST_CLIENT_CERT_PATH")]
    pub entrust_client_cert_path: Option<String>,

    /// Client key (PEM file) of the seeded Entrust issuer.
    #[arg(long, env = "CERTCTL_ENTRUST_CLIENT_KEY_PATH")]
    pub entrust_client_key_path: Option<String>,

    /// CA id (in CA Gateway) of the seeded Entrust issuer.
    #[arg(long, env = "CERTCTL_ENTRUST_CA_ID")]
    pub entrust_ca_id: Option<String>,

    /// Enrollment profile id of the seeded Entrust issuer.
    #[arg(long, env = "CERTCTL_ENTRUST_PROFILE_ID")]
    pub entrust_profile_id: Option<String>,

    /// Seeds `iss-stepca` (type stepca) when set and no issuer has that id.
    #[arg(long, env = "CERTCTL_STEPCA_URL", value_parser = parsers::http_url)]
    pub stepca_url: Option<String>,

    /// Root certificate (PEM file) of the seeded step-ca issuer: trusted for its TLS, and its
    /// fingerprint goes into each token.
    #[arg(long, env = "CERTCTL_STEPCA_ROOT_CERT")]
    pub stepca_root_cert: Option<String>,

    /// JWK provisioner name of the seeded step-ca issuer.
    #[arg(long, env = "CERTCTL_STEPCA_PROVISIONER")]
    pub stepca_provisioner: Option<String>,

    /// The provisioner's private key file (a JWK, encrypted as `step crypto jwk create` writes
    /// it, or plain) of the seeded step-ca issuer.
    #[arg(long, env = "CERTCTL_STEPCA_KEY_PATH")]
    pub stepca_key_path: Option<String>,

    /// Password that decrypts the seeded step-ca issuer's provisioner key.
    #[arg(long, env = "CERTCTL_STEPCA_PASSWORD", value_parser = parsers::secret_text)]
    pub stepca_password: Option<Secret<String>>,

    /// Serve the ACME server (RFC 8555) under /acme/profile/{profile_id}/… and /acme/….
    #[arg(long, env = "CERTCTL_ACME_SERVER_ENABLED", default_value = "false", value_parser = parsers::boolean, action = clap::ArgAction::Set)]
    pub acme_server_enabled: bool,

    /// The profile the shorthand /acme/… routes stand for (unset: only /acme/profile/{id}/…).
    #[arg(long, env = "CERTCTL_ACME_SERVER_DEFAULT_PROFILE_ID")]
    pub acme_server_default_profile_id: Option<String>,

    /// How long an ACME nonce is accepted after it was handed out.
    #[arg(long, env = "CERTCTL_ACME_SERVER_NONCE_TTL", default_value = "5m", value_parser = parsers::positive_duration)]
    pub acme_server_nonce_ttl: Duration,

    /// Terms of service URL in the ACME directory; when set, new accounts must agree to them.
    #[arg(long, env = "CERTCTL_ACME_SERVER_TOS_URL", value_parser = parsers::http_url)]
    pub acme_server_tos_url: Option<String>,

    /// Website URL in the ACME directory.
    #[arg(long, env = "CERTCTL_ACME_SERVER_WEBSITE", value_parser = parsers::http_url)]
    pub acme_server_website: Option<String>,

    /// Serve ACME renewal information (RFC 9773) and name it in the directory.
    #[arg(long, env = "CERTCTL_ACME_SERVER_ARI_ENABLED", default_value = "true", value_parser = parsers::boolean, action = clap::ArgAction::Set)]
    pub acme_server_ari_enabled: bool,

    /// How often ACME clients are told to ask for renewal information again (Retry-After).
    #[arg(long, env = "CERTCTL_ACME_SERVER_ARI_POLL_INTERVAL", default_value = "6h", value_parser = parsers::positive_duration)]
    pub acme_server_ari_poll_interval: Duration,

    /// Time between ticks of the acme_gc loop (used ACME nonces past their lifetime deleted).
    #[arg(long, env = "CERTCTL_ACME_SERVER_GC_INTERVAL", default_value = "1m", value_parser = parsers::positive_duration)]
    pub acme_server_gc_interval: Duration,

    /// Domain names CAA records may name for this CA, comma-separated, in the ACME directory.
    #[arg(long, env = "CERTCTL_ACME_SERVER_CAA_IDENTITIES", default_value = "", value_parser = parsers::caa_identities)]
    pub acme_server_caa_identities: CaaIdentities,

    /// Run the scheduler loops on their timers. false: they run only when
    /// POST /api/v1/admin/scheduler/{loop}/run asks (maintenance, tests).
    #[arg(long, env = "CERTCTL_SCHEDULER_ENABLED", default_value = "true", value_parser = parsers::boolean, action = clap::ArgAction::Set)]
    pub scheduler_enabled: bool,

    /// Each tick's delay is the loop's interval plus or minus this percentage, at random.
    #[arg(long, env = "CERTCTL_SCHEDULER_JITTER_PERCENT", default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=50))]
    pub scheduler_jitter_percent: u8,

    /// Time between renewal scans (what is due is enqueued).
    #[arg(long, env = "CERTCTL_SCHEDULER_RENEWAL_CHECK_INTERVAL", default_value = "1h", value_parser = parsers::positive_duration)]
    pub scheduler_renewal_check_interval: Duration,

    /// Time between job processor rounds (the dispatcher is also woken when work is enqueued).
    #[arg(long, env = "CERTCTL_SCHEDULER_JOB_PROCESSOR_INTERVAL", default_value = "30s", value_parser = parsers::positive_duration)]
    pub scheduler_job_processor_interval: Duration,

    /// Time between sweeps that put failed jobs whose backoff is over back in the queue.
    #[arg(long, env = "CERTCTL_SCHEDULER_RETRY_INTERVAL", default_value = "5m", value_parser = parsers::positive_duration)]
    pub scheduler_retry_interval: Duration,

    /// Time between job timeout reaper runs.
    #[arg(long, env = "CERTCTL_JOB_TIMEOUT_INTERVAL", default_value = "10m", value_parser = parsers::positive_duration)]
    pub job_timeout_interval: Duration,

    /// A job waiting for an agent's CSR longer than this fails.
    #[arg(long, env = "CERTCTL_JOB_AWAITING_CSR_TIMEOUT", default_value = "24h", value_parser = parsers::positive_duration)]
    pub job_awaiting_csr_timeout: Duration,

    /// A job waiting for approval longer than this fails.
    #[arg(long, env = "CERTCTL_JOB_AWAITING_APPROVAL_TIMEOUT", default_value = "168h", value_parser = parsers::positive_duration)]
    pub job_awaiting_approval_timeout: Duration,

    /// Time between sweeps that mark certificates past their expiry as Expired.
    #[arg(long, env = "CERTCTL_SHORT_LIVED_EXPIRY_CHECK_INTERVAL", default_value = "30s", value_parser = parsers::positive_duration)]
    pub short_lived_expiry_check_interval: Duration,

    /// Token agents present (as `Authorization: Bearer`) to register themselves with
    /// POST /api/v1/agents, at least 16 characters. Unset: only admin keys register agents.
    #[arg(long, env = "CERTCTL_AGENT_BOOTSTRAP_TOKEN", value_parser = parsers::encryption_key, hide_env_values = true)]
    pub agent_bootstrap_token: Option<Secret<String>>,

    /// A heartbeat is written to the database within this long (the aggregator's flush interval).
    #[arg(long, env = "CERTCTL_HEARTBEAT_FLUSH_INTERVAL", default_value = "1s", value_parser = parsers::positive_duration)]
    pub heartbeat_flush_interval: Duration,

    /// Agents per heartbeat flush statement; this many waiting starts a flush before the interval ends.
    #[arg(long, env = "CERTCTL_HEARTBEAT_FLUSH_BATCH", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub heartbeat_flush_batch: u32,

    /// Agents whose heartbeat may wait for a flush at once; beyond it new beats get 503 with Retry-After.
    #[arg(long, env = "CERTCTL_HEARTBEAT_BUFFER_MAX", default_value_t = 500_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub heartbeat_buffer_max: u32,

    /// Time between sweeps that mark silent agents Offline.
    #[arg(long, env = "CERTCTL_SCHEDULER_AGENT_HEALTH_CHECK_INTERVAL", default_value = "2m", value_parser = parsers::positive_duration)]
    pub scheduler_agent_health_check_interval: Duration,

    /// An agent that has not sent a heartbeat for this long is Offline (default: three missed
    /// 30-second agent heartbeats); the jobs it held go back to the queue.
    #[arg(long, env = "CERTCTL_AGENT_OFFLINE_AFTER", default_value = "90s", value_parser = parsers::positive_duration)]
    pub agent_offline_after: Duration,

    /// How long work handed to an agent (a deployment, a CSR to send) is leased to it.
    #[arg(long, env = "CERTCTL_AGENT_WORK_LEASE", default_value = "10m", value_parser = parsers::positive_duration)]
    pub agent_work_lease: Duration,

    /// Load the demo fixtures (teams, owners, policies, iss-local…). Default: true with the
    /// embedded PostgreSQL, false with CERTCTL_DATABASE_URL.
    #[arg(long, env = "CERTCTL_DEMO_SEED", value_parser = parsers::boolean, action = clap::ArgAction::Set)]
    pub demo_seed: Option<bool>,
}

/// A settings problem found after parsing: names the variable, the value and what is accepted.
#[derive(Debug, thiserror::Error)]
#[error("invalid {var}={value:?}: {accepted}")]
pub struct ConfigError {
    pub var: &'static str,
    pub value: String,
    pub accepted: String,
}

impl Settings {
    /// Whether the server manages its own PostgreSQL cluster.
    pub fn embedded_database(&self) -> bool {
        self.database_url.is_none()
    }

    /// DB actor instances to start (`CERTCTL_DATABASE_ACTORS`, 0 resolved to twice the core count).
    pub fn database_actor_count(&self) -> usize {
        match self.database_actors {
            // Two per core: row decoding on list pages keeps one instance per core CPU-bound
            // (docs/operator/benchmarks.md).
            0 => 2 * std::thread::available_parallelism().map(usize::from).unwrap_or(1),
            n => n as usize,
        }
    }

    /// Whether the demo seed runs (explicit setting, else on only with the embedded cluster).
    pub fn demo_seed_enabled(&self) -> bool {
        self.demo_seed.unwrap_or_else(|| self.embedded_database())
    }

    /// Every configured key: named keys first, then legacy ones.
    pub fn configured_keys(&self) -> Vec<NamedKey> {
        let named = self.api_keys_named.as_ref().map(|s| s.expose().clone()).unwrap_or_default();
        let legacy = self.auth_secret.as_ref().map(|s| s.expose().clone()).unwrap_or_default();
        named.into_iter().chain(legacy).collect()
    }

    /// Checks what single values cannot: settings that only make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (&self.server_tls_cert_path, &self.server_tls_key_path) {
            (Some(_), None) => {
                return Err(ConfigError {
                    var: "CERTCTL_SERVER_TLS_KEY_PATH",
                    value: String::new(),
                    accepted: "must be set when CERTCTL_SERVER_TLS_CERT_PATH is set".into(),
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError {
                    var: "CERTCTL_SERVER_TLS_CERT_PATH",
                    value: String::new(),
                    accepted: "must be set when CERTCTL_SERVER_TLS_KEY_PATH is set".into(),
                })
            }
            _ => {}
        }
        let mut names = std::collections::HashSet::new();
        for key in self.configured_keys() {
            if !names.insert(key.name.clone()) {
                return Err(ConfigError {
                    var: "CERTCTL_API_KEYS_NAMED",
                    value: key.name,
                    accepted: "key names must be unique across CERTCTL_API_KEYS_NAMED and CERTCTL_AUTH_SECRET".into(),
                });
            }
        }
        if let Some(path) = &self.database_tls_ca_path {
            if !path.is_file() {
                return Err(ConfigError {
                    var: "CERTCTL_DATABASE_TLS_CA_PATH",
                    value: path.display().to_string(),
                    accepted: "a readable PEM file of CA certificates".into(),
                });
            }
        }
        if self.audit_retention_interval.is_zero() {
            return Err(ConfigError {
                var: "CERTCTL_AUDIT_RETENTION_INTERVAL",
                value: "0s".into(),
                accepted: "a duration above zero such as 1h".into(),
            });
        }
        if self.database_pool_timeout.is_zero() {
            return Err(ConfigError {
                var: "CERTCTL_DATABASE_POOL_TIMEOUT",
                value: "0s".into(),
                accepted: "a duration above zero such as 5s".into(),
            });
        }
        Ok(())
    }
}

/// Parses the process's arguments and environment. Help and version print and exit; any invalid
/// value becomes one line naming the variable (the caller prints it and exits non-zero).
pub fn load() -> Result<Cli, String> {
    load_from(std::env::args_os())
}

/// [`load`] over explicit arguments (the environment is still read).
pub fn load_from<I, T>(args: I) -> Result<Cli, String>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    // `--help` names each variable but not its current value: an empty one would read
    // `[env: CERTCTL_X=]`, and `config` shows the effective values, secrets masked.
    let command = <Cli as clap::CommandFactory>::command().mut_args(|arg| arg.hide_env_values(true));
    let parsed = command
        .try_get_matches_from(args)
        .and_then(|matches| <Cli as clap::FromArgMatches>::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => return Err(parsers::one_line(&e)),
    };
    cli.settings.validate().map_err(|e| format!("certctl-server: {e}"))?;
    Ok(cli)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The help text as `--help` prints it.
    fn help() -> String {
        let mut command = <Cli as clap::CommandFactory>::command().mut_args(|arg| arg.hide_env_values(true));
        command.render_long_help().to_string()
    }

    #[test]
    fn help_names_the_accepted_key_types_and_the_duration_syntax() {
        let text = help().split_whitespace().collect::<Vec<_>>().join(" ");
        for algorithm in KeyAlgorithm::ALL {
            assert!(text.contains(algorithm.as_str()), "--help lists {algorithm}");
        }
        assert!(text.contains("1h30m") && text.contains("units: ms, s, m, h, d"), "the duration syntax");
        assert!(!text.contains("=]"), "no empty env values");
    }

    #[test]
    fn the_effective_settings_list_every_variable() {
        let command = <Cli as clap::CommandFactory>::command();
        let args = ["certctl-server", "--database-url", "postgres://u@h/db"];
        let cli = <Cli as clap::Parser>::try_parse_from(args).expect("parses");
        let printed: Vec<&str> = cli.settings.effective().iter().map(|(name, _)| *name).collect();
        for arg in command.get_arguments() {
            let Some(env) = arg.get_env().and_then(|e| e.to_str()) else { continue };
            assert!(printed.contains(&env), "{env} is missing from the effective settings");
        }
    }
}
