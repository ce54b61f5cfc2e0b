//! The effective settings as `CERTCTL_NAME=value` lines, secrets masked, for
//! `certctl-server config` and the admin config endpoint.

use certctl_actors::renewal::dispatcher::KeygenMode;

use super::{AuthType, Settings};

impl Settings {
    /// Every setting with its effective value; secrets show only what is safe (key names).
    pub fn effective(&self) -> Vec<(&'static str, String)> {
        let opt_number = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        let masked = |set: bool| if set { "***".to_string() } else { String::new() };
        let opt_path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let key_names = |keys: &Option<super::Secret<Vec<super::NamedKey>>>| {
            keys.as_ref()
                .map(|k| k.expose().iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(","))
                .unwrap_or_default()
        };
        vec![
            (
                "CERTCTL_DATABASE_URL",
                self.database_url.as_ref().map(|u| u.masked()).unwrap_or_else(|| "(embedded)".into()),
            ),
            ("CERTCTL_DATABASE_MAX_CONNS", self.database_max_conns.to_string()),
            ("CERTCTL_DATABASE_IDLE_TIMEOUT", super::parsers::format_duration(self.database_idle_timeout).to_string()),
            ("CERTCTL_DATABASE_POOL_TIMEOUT", super::parsers::format_duration(self.database_pool_timeout).to_string()),
            (
                "CERTCTL_DATABASE_STATEMENT_TIMEOUT",
                super::parsers::format_duration(self.database_statement_timeout).to_string(),
            ),
            (
                "CERTCTL_DATABASE_CONNECT_TIMEOUT",
                super::parsers::format_duration(self.database_connect_timeout).to_string(),
            ),
            ("CERTCTL_DATABASE_TLS_CA_PATH", opt_path(&self.database_tls_ca_path)),
            ("CERTCTL_DATABASE_TLS_VERIFY", self.database_tls_verify.to_string()),
            ("CERTCTL_DATABASE_ACTORS", self.database_actors.to_string()),
            ("CERTCTL_DATA_DIR", self.data_dir.display().to_string()),
            ("CERTCTL_POSTGRES_BIN_DIR", opt_path(&self.postgres_bin_dir)),
            ("CERTCTL_SERVER_HOST", self.server_host.clone()),
            ("CERTCTL_SERVER_PORT", self.server_port.to_string()),
            ("CERTCTL_SERVER_TLS", self.server_tls.to_string()),
            ("CERTCTL_SERVER_TLS_CERT_PATH", opt_path(&self.server_tls_cert_path)),
            ("CERTCTL_SERVER_TLS_KEY_PATH", opt_path(&self.server_tls_key_path)),
            ("CERTCTL_SERVER_WORKERS", self.server_workers.to_string()),
            ("CERTCTL_MAX_BODY_SIZE", self.max_body_size.to_string()),
            ("CERTCTL_REQUEST_BODY_TIMEOUT", super::parsers::format_duration(self.request_body_timeout)),
            ("CERTCTL_MAX_CONNECTIONS_PER_PEER", self.max_connections_per_peer.to_string()),
            (
                "CERTCTL_AUTH_TYPE",
                match self.auth_type {
                    AuthType::ApiKey => "api-key",
                    AuthType::None => "none",
                }
                .into(),
            ),
            ("CERTCTL_API_KEYS_NAMED", key_names(&self.api_keys_named)),
            ("CERTCTL_AUTH_SECRET", key_names(&self.auth_secret)),
            ("CERTCTL_ENVIRONMENTS", self.environments.0.join(",")),
            ("CERTCTL_AUDIT_RETENTION_DAYS", self.audit_retention_days.to_string()),
            (
                "CERTCTL_AUDIT_RETENTION_INTERVAL",
                super::parsers::format_duration(self.audit_retention_interval).to_string(),
            ),
            ("CERTCTL_AUDIT_READS", self.audit_reads.to_string()),
            ("CERTCTL_LOG_LEVEL", format!("{:?}", self.log_level).to_lowercase()),
            ("CERTCTL_LOG_FORMAT", format!("{:?}", self.log_format).to_lowercase()),
            ("CERTCTL_METRICS_ADDR", self.metrics_addr.map(|a| a.to_string()).unwrap_or_default()),
            (
                "CERTCTL_CONFIG_ENCRYPTION_KEY",
                if self.config_encryption_key.is_some() { "***".into() } else { String::new() },
            ),
            ("CERTCTL_CA_CERT_PATH", opt_path(&self.ca_cert_path)),
            ("CERTCTL_CA_KEY_PATH", opt_path(&self.ca_key_path)),
            ("CERTCTL_CA_KEY_ALGORITHM", self.ca_key_algorithm.to_string()),
            (
                "CERTCTL_KEYGEN_MODE",
                match self.keygen_mode {
                    KeygenMode::Agent => "agent",
                    KeygenMode::Server => "server",
                }
                .into(),
            ),
            ("CERTCTL_KEYGEN_ALGORITHM", self.keygen_algorithm.to_string()),
            ("CERTCTL_RENEWAL_CONCURRENCY", self.renewal_concurrency.to_string()),
            ("CERTCTL_RENEWAL_LEASE", super::parsers::format_duration(self.renewal_lease).to_string()),
            (
                "CERTCTL_ASYNC_POLL_INITIAL_INTERVAL",
                super::parsers::format_duration(self.async_poll_initial_interval).to_string(),
            ),
            (
                "CERTCTL_ASYNC_POLL_MAX_INTERVAL",
                super::parsers::format_duration(self.async_poll_max_interval).to_string(),
            ),
            ("CERTCTL_ASYNC_POLL_MAX_WAIT_SECONDS", opt_number(self.async_poll_max_wait_seconds)),
            ("CERTCTL_DIGICERT_POLL_MAX_WAIT_SECONDS", opt_number(self.digicert_poll_max_wait_seconds)),
            ("CERTCTL_SECTIGO_POLL_MAX_WAIT_SECONDS", opt_number(self.sectigo_poll_max_wait_seconds)),
            ("CERTCTL_GLOBALSIGN_POLL_MAX_WAIT_SECONDS", opt_number(self.globalsign_poll_max_wait_seconds)),
            ("CERTCTL_ENTRUST_POLL_MAX_WAIT_SECONDS", opt_number(self.entrust_poll_max_wait_seconds)),
            ("CERTCTL_ASYNC_POLL_CONCURRENCY", self.async_poll_concurrency.to_string()),
            ("CERTCTL_CA_REQUEST_TIMEOUT", super::parsers::format_duration(self.ca_request_timeout).to_string()),
            ("CERTCTL_ACME_HTTP01_LISTEN", self.acme_http01_listen.map(|a| a.to_string()).unwrap_or_default()),
            ("CERTCTL_ACME_DIRECTORY_URL", self.acme_directory_url.clone().unwrap_or_default()),
            ("CERTCTL_ACME_EMAIL", self.acme_email.clone().unwrap_or_default()),
            ("CERTCTL_ACME_CHALLENGE_TYPE", self.acme_challenge_type.clone().unwrap_or_default()),
            ("CERTCTL_ACME_DNS_PRESENT_SCRIPT", self.acme_dns_present_script.clone().unwrap_or_default()),
            ("CERTCTL_ACME_DNS_CLEANUP_SCRIPT", self.acme_dns_cleanup_script.clone().unwrap_or_default()),
            ("CERTCTL_ACME_PROFILE", self.acme_profile.clone().unwrap_or_default()),
            ("CERTCTL_DIGICERT_API_KEY", masked(self.digicert_api_key.is_some())),
            ("CERTCTL_DIGICERT_ORG_ID", opt_number(self.digicert_org_id)),
            ("CERTCTL_DIGICERT_PRODUCT_TYPE", self.digicert_product_type.clone().unwrap_or_default()),
            ("CERTCTL_DIGICERT_BASE_URL", self.digicert_base_url.clone().unwrap_or_default()),
            ("CERTCTL_SECTIGO_CUSTOMER_URI", self.sectigo_customer_uri.clone().unwrap_or_default()),
            ("CERTCTL_SECTIGO_LOGIN", masked(self.sectigo_login.is_some())),
            ("CERTCTL_SECTIGO_PASSWORD", masked(self.sectigo_password.is_some())),
            ("CERTCTL_SECTIGO_ORG_ID", opt_number(self.sectigo_org_id)),
            ("CERTCTL_SECTIGO_CERT_TYPE", opt_number(self.sectigo_cert_type)),
            ("CERTCTL_SECTIGO_TERM", opt_number(self.sectigo_term)),
            ("CERTCTL_SECTIGO_BASE_URL", self.sectigo_base_url.clone().unwrap_or_default()),
            ("CERTCTL_VAULT_ADDR", self.vault_addr.clone().unwrap_or_default()),
            ("CERTCTL_VAULT_TOKEN", masked(self.vault_token.is_some())),
            ("CERTCTL_VAULT_MOUNT", self.vault_mount.clone().unwrap_or_default()),
            ("CERTCTL_VAULT_ROLE", self.vault_role.clone().unwrap_or_default()),
            ("CERTCTL_VAULT_TTL", self.vault_ttl.clone().unwrap_or_default()),
            ("CERTCTL_GLOBALSIGN_API_URL", self.globalsign_api_url.clone().unwrap_or_default()),
            ("CERTCTL_GLOBALSIGN_API_KEY", masked(self.globalsign_api_key.is_some())),
            ("CERTCTL_GLOBALSIGN_API_SECRET", masked(self.globalsign_api_secret.is_some())),
            ("CERTCTL_GLOBALSIGN_CLIENT_CERT_PATH", self.globalsign_client_cert_path.clone().unwrap_or_default()),
            ("CERTCTL_GLOBALSIGN_CLIENT_KEY_PATH", self.globalsign_client_key_path.clone().unwrap_or_default()),
            ("CERTCTL_GLOBALSIGN_SERVER_CA_PATH", self.globalsign_server_ca_path.clone().unwrap_or_default()),
            ("CERTCTL_ENTRUST_API_URL", self.entrust_api_url.clone().unwrap_or_default()),
            ("CERTCTL_ENTRUST_CLIENT_CERT_PATH", self.entrust_client_cert_path.clone().unwrap_or_default()),
            ("CERTCTL_ENTRUST_CLIENT_KEY_PATH", self.entrust_client_key_path.clone().unwrap_or_default()),
            ("CERTCTL_ENTRUST_CA_ID", self.entrust_ca_id.clone().unwrap_or_default()),
            ("CERTCTL_ENTRUST_PROFILE_ID", self.entrust_profile_id.clone().unwrap_or_default()),
            ("CERTCTL_STEPCA_URL", self.stepca_url.clone().unwrap_or_default()),
            ("CERTCTL_STEPCA_ROOT_CERT", self.stepca_root_cert.clone().unwrap_or_default()),
            ("CERTCTL_STEPCA_PROVISIONER", self.stepca_provisioner.clone().unwrap_or_default()),
            ("CERTCTL_STEPCA_KEY_PATH", self.stepca_key_path.clone().unwrap_or_default()),
            ("CERTCTL_STEPCA_PASSWORD", masked(self.stepca_password.is_some())),
            ("CERTCTL_ACME_SERVER_ENABLED", self.acme_server_enabled.to_string()),
            ("CERTCTL_ACME_SERVER_DEFAULT_PROFILE_ID", self.acme_server_default_profile_id.clone().unwrap_or_default()),
            ("CERTCTL_ACME_SERVER_NONCE_TTL", super::parsers::format_duration(self.acme_server_nonce_ttl).to_string()),
            ("CERTCTL_ACME_SERVER_TOS_URL", self.acme_server_tos_url.clone().unwrap_or_default()),
            ("CERTCTL_ACME_SERVER_WEBSITE", self.acme_server_website.clone().unwrap_or_default()),
            ("CERTCTL_ACME_SERVER_CAA_IDENTITIES", self.acme_server_caa_identities.0.join(",")),
            ("CERTCTL_ACME_SERVER_ARI_ENABLED", self.acme_server_ari_enabled.to_string()),
            (
                "CERTCTL_ACME_SERVER_ARI_POLL_INTERVAL",
                super::parsers::format_duration(self.acme_server_ari_poll_interval).to_string(),
            ),
            (
                "CERTCTL_ACME_SERVER_GC_INTERVAL",
                super::parsers::format_duration(self.acme_server_gc_interval).to_string(),
            ),
            ("CERTCTL_SCHEDULER_ENABLED", self.scheduler_enabled.to_string()),
            ("CERTCTL_SCHEDULER_JITTER_PERCENT", self.scheduler_jitter_percent.to_string()),
            (
                "CERTCTL_SCHEDULER_RENEWAL_CHECK_INTERVAL",
                super::parsers::format_duration(self.scheduler_renewal_check_interval).to_string(),
            ),
            (
                "CERTCTL_SCHEDULER_JOB_PROCESSOR_INTERVAL",
                super::parsers::format_duration(self.scheduler_job_processor_interval).to_string(),
            ),
            (
                "CERTCTL_SCHEDULER_RETRY_INTERVAL",
                super::parsers::format_duration(self.scheduler_retry_interval).to_string(),
            ),
            ("CERTCTL_JOB_TIMEOUT_INTERVAL", super::parsers::format_duration(self.job_timeout_interval).to_string()),
            (
                "CERTCTL_JOB_AWAITING_CSR_TIMEOUT",
                super::parsers::format_duration(self.job_awaiting_csr_timeout).to_string(),
            ),
            (
                "CERTCTL_JOB_AWAITING_APPROVAL_TIMEOUT",
                super::parsers::format_duration(self.job_awaiting_approval_timeout).to_string(),
            ),
            (
                "CERTCTL_SHORT_LIVED_EXPIRY_CHECK_INTERVAL",
                super::parsers::format_duration(self.short_lived_expiry_check_interval).to_string(),
            ),
            (
                "CERTCTL_AGENT_BOOTSTRAP_TOKEN",
                if self.agent_bootstrap_token.is_some() { "***".into() } else { String::new() },
            ),
            (
                "CERTCTL_HEARTBEAT_FLUSH_INTERVAL",
                super::parsers::format_duration(self.heartbeat_flush_interval).to_string(),
            ),
            ("CERTCTL_HEARTBEAT_FLUSH_BATCH", self.heartbeat_flush_batch.to_string()),
            ("CERTCTL_HEARTBEAT_BUFFER_MAX", self.heartbeat_buffer_max.to_string()),
            (
                "CERTCTL_SCHEDULER_AGENT_HEALTH_CHECK_INTERVAL",
                super::parsers::format_duration(self.scheduler_agent_health_check_interval).to_string(),
            ),
            ("CERTCTL_AGENT_OFFLINE_AFTER", super::parsers::format_duration(self.agent_offline_after).to_string()),
            ("CERTCTL_AGENT_WORK_LEASE", super::parsers::format_duration(self.agent_work_lease).to_string()),
            ("CERTCTL_DEMO_SEED", self.demo_seed_enabled().to_string()),
        ]
    }

    /// The effective settings, one `NAME=value` line each.
    pub fn render(&self) -> String {
        self.effective().into_iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }
}
