//! Value parsers for settings, each with a message that says what is accepted, and [`one_line`],
//! which turns any clap error into a single line naming the environment variable.

use std::str::FromStr;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::CommandFactory;

use super::{Cli, Secret};

/// A parsed PostgreSQL URL: the driver config, plus a masked form for printing.
#[derive(Clone)]
pub struct DatabaseUrl {
    pub config: tokio_postgres::Config,
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

impl DatabaseUrl {
    /// `postgres://user:***@host:port/db`, never the password.
    pub fn masked(&self) -> String {
        let c = &self.config;
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let ports: Vec<String> = c.get_ports().iter().map(u16::to_string).collect();
        let password = if c.get_password().is_some() { ":***" } else { "" };
        format!(
            "postgres://{}{}@{}{}/{}",
            c.get_user().unwrap_or(""),
            password,
            hosts.join(","),
            if ports.is_empty() { String::new() } else { format!(":{}", ports.join(",")) },
            c.get_dbname().unwrap_or("")
        )
    }
}

/// A key from CERTCTL_API_KEYS_NAMED or CERTCTL_AUTH_SECRET.
#[derive(Clone)]
pub struct NamedKey {
    pub name: String,
    pub key: String,
    pub admin: bool,
    /// Reads only (`name:key:read`).
    pub read_only: bool,
}

impl std::fmt::Debug for NamedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let role = match (self.admin, self.read_only) {
            (true, _) => ":admin",
            (false, true) => ":read",
            (false, false) => "",
        };
        write!(f, "{}:***{role}", self.name)
    }
}

/// Shortest key accepted: 16 characters keep brute force out of reach even for human-made keys.
pub const MIN_KEY_LEN: usize = 16;

/// `30s`, `5m`, `1h30m`, `250ms` (humantime syntax, Go-style durations included).
pub fn duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value.trim())
        .map_err(|_| "expected a duration such as 250ms, 30s, 5m or 1h30m".to_string())
}

/// A duration in the form `--help` and the defaults use (`250ms`, `30s`, `5m`, `1h30m`, `24h`), so
/// `config` prints what an operator would type. Sub-millisecond parts are dropped.
pub fn format_duration(d: Duration) -> String {
    let millis = d.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    let (hours, rest) = (millis / 3_600_000, millis % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    let (seconds, millis) = (rest / 1000, rest % 1000);
    let mut out = String::new();
    for (value, unit) in [(hours, "h"), (minutes, "m"), (seconds, "s"), (millis, "ms")] {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    out
}

/// A duration of at least 100 ms (a loop interval or a lease of zero would spin or expire at
/// once).
pub fn positive_duration(value: &str) -> Result<Duration, String> {
    match duration(value) {
        Ok(d) if d >= Duration::from_millis(100) => Ok(d),
        Ok(_) => Err("expected a duration of at least 100ms, such as 30s, 5m or 1h".to_string()),
        Err(e) => Err(e),
    }
}

/// `true/false`, `1/0`, `yes/no`, `on/off` (case-insensitive).
pub fn boolean(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false (also 1/0, yes/no, on/off)".to_string()),
    }
}

/// An IP address or a DNS host name.
pub fn host(value: &str) -> Result<String, String> {
    let value = value.trim();
    let is_ip = std::net::IpAddr::from_str(value).is_ok();
    let is_name = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if is_ip || is_name {
        Ok(value.to_string())
    } else {
        Err("expected an IP address (127.0.0.1, 0.0.0.0, ::1) or a host name".to_string())
    }
}

/// An http or https URL (a CA's API or ACME directory).
pub fn http_url(value: &str) -> Result<String, String> {
    match reqwest::Url::parse(value.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => Ok(value.trim().to_string()),
        _ => Err("expected an http or https URL such as https://acme-v02.api.letsencrypt.org/directory".to_string()),
    }
}

/// Domain names a CAA record may name as this CA (`ca.example.com,pki.example.com`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaaIdentities(pub Vec<String>);

/// Comma-separated host names, possibly none.
pub fn caa_identities(value: &str) -> Result<CaaIdentities, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| match host(n) {
            Ok(name) if name.parse::<std::net::IpAddr>().is_err() => Ok(name.to_ascii_lowercase()),
            _ => Err(format!("{n:?} is not a domain name; expected names such as ca.example.com")),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(CaaIdentities)
}

/// A PostgreSQL connection string in URL or key=value form.
pub fn database_url(value: &str) -> Result<DatabaseUrl, String> {
    tokio_postgres::Config::from_str(value.trim()).map(|config| DatabaseUrl { config }).map_err(|_| {
        "expected a PostgreSQL URL such as postgres://certctl:secret@db.example.com:5432/certctl".to_string()
    })
}

/// The accepted environment names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Environments(pub Vec<String>);

/// `production,staging,…`: names of letters, digits, '-' or '_', at most 64 characters each.
pub fn environments(value: &str) -> Result<Environments, String> {
    let names: Vec<String> = value.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect();
    let valid = |n: &String| n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if names.is_empty() || !names.iter().all(valid) {
        return Err("expected comma-separated names of letters, digits, '-' or '_' (at most 64 characters each)".into());
    }
    Ok(Environments(names))
}

/// `name:key[:admin|:read],...`: no role is certctl's non-admin key, which reads and writes the
/// inventory; `read` only reads.
pub fn named_keys(value: &str) -> Result<Secret<Vec<NamedKey>>, String> {
    const FORMAT: &str =
        "expected name:key[:admin|:read] entries separated by commas, with keys of at least 16 characters";
    let mut keys = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let parts: Vec<&str> = entry.split(':').collect();
        let (name, key, admin, read_only) = match parts.as_slice() {
            [name, key] => (*name, *key, false, false),
            [name, key, "admin"] => (*name, *key, true, false),
            [name, key, "read"] => (*name, *key, false, true),
            _ => return Err(FORMAT.to_string()),
        };
        if !certctl_actors::domain::validation::is_valid_id(name) || key.len() < MIN_KEY_LEN {
            return Err(FORMAT.to_string());
        }
        keys.push(NamedKey { name: name.to_string(), key: key.to_string(), admin, read_only });
    }
    if keys.is_empty() {
        return Err(FORMAT.to_string());
    }
    Ok(Secret::new(keys))
}

/// certctl's legacy comma list of keys, named `legacy-key-1`, `legacy-key-2`, … and not admin.
pub fn legacy_keys(value: &str) -> Result<Secret<Vec<NamedKey>>, String> {
    let keys: Vec<NamedKey> = value
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .enumerate()
        .map(|(i, key)| NamedKey {
            name: format!("legacy-key-{}", i + 1),
            key: key.to_string(),
            admin: false,
            read_only: false,
        })
        .collect();
    if keys.is_empty() || keys.iter().any(|k| k.key.len() < MIN_KEY_LEN) {
        return Err("expected keys of at least 16 characters separated by commas".to_string());
    }
    Ok(Secret::new(keys))
}

/// Variables whose values are never printed, not even when rejected.
pub const SECRET_VARS: [&str; 12] = [
    "CERTCTL_DATABASE_URL",
    "CERTCTL_API_KEYS_NAMED",
    "CERTCTL_AUTH_SECRET",
    "CERTCTL_CONFIG_ENCRYPTION_KEY",
    "CERTCTL_AGENT_BOOTSTRAP_TOKEN",
    "CERTCTL_DIGICERT_API_KEY",
    "CERTCTL_SECTIGO_LOGIN",
    "CERTCTL_SECTIGO_PASSWORD",
    "CERTCTL_VAULT_TOKEN",
    "CERTCTL_GLOBALSIGN_API_KEY",
    "CERTCTL_GLOBALSIGN_API_SECRET",
    "CERTCTL_STEPCA_PASSWORD",
];

/// Renders a clap error as one line: `invalid CERTCTL_X="value": what is accepted`.
pub fn one_line(error: &clap::Error) -> String {
    let arg = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.clone(),
        _ => String::new(),
    };
    let var = env_name_of(&arg).unwrap_or_else(|| arg.clone());
    let value = match error.get(ContextKind::InvalidValue) {
        // A rejected secret is still a secret: never echo it.
        Some(ContextValue::String(_)) if SECRET_VARS.contains(&var.as_str()) => "***".to_string(),
        Some(ContextValue::String(value)) => value.clone(),
        _ => String::new(),
    };
    let accepted = match (error.kind(), error.get(ContextKind::ValidValue)) {
        (_, Some(ContextValue::Strings(valid))) => format!("expected one of {}", valid.join(", ")),
        (ErrorKind::ValueValidation, _) => {
            std::error::Error::source(error).map(|s| s.to_string()).unwrap_or_else(|| "invalid value".into())
        }
        _ => {
            // Anything else (unknown flag, missing value…): clap's own first line is clear enough.
            let rendered = error.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            return format!("certctl-server: {first}");
        }
    };
    format!("certctl-server: invalid {var}={value:?}: {accepted}")
}

/// Maps clap's `--flag <VALUE>` rendering of an argument back to its environment variable.
fn env_name_of(rendered_arg: &str) -> Option<String> {
    let long = rendered_arg.split_whitespace().next()?.trim_start_matches("--");
    let command = Cli::command();
    let arg = command.get_arguments().find(|a| a.get_long() == Some(long))?;
    arg.get_env().map(|e| e.to_string_lossy().into_owned())
}

/// A credential (an API key, a password, a token): any text that is not empty, never printed.
pub fn secret_text(value: &str) -> Result<Secret<String>, String> {
    if value.trim().is_empty() {
        return Err("expected a value (it is masked in every listing)".into());
    }
    Ok(Secret::new(value.trim().to_owned()))
}

/// A passphrase of at least 16 characters.
pub fn encryption_key(value: &str) -> Result<Secret<String>, String> {
    if value.chars().count() < 16 {
        return Err("expected a passphrase of at least 16 characters (e.g. `openssl rand -base64 32`)".into());
    }
    Ok(Secret::new(value.to_owned()))
}

/// A key algorithm name.
pub fn key_algorithm(value: &str) -> Result<certctl_actors::crypto::key_algorithm::KeyAlgorithm, String> {
    use certctl_actors::crypto::key_algorithm::KeyAlgorithm;
    KeyAlgorithm::parse(value.trim()).ok_or_else(|| {
        let names: Vec<&str> = KeyAlgorithm::ALL.iter().map(|a| a.as_str()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

/// `agent` or `server`.
pub fn keygen_mode(value: &str) -> Result<certctl_actors::renewal::dispatcher::KeygenMode, String> {
    certctl_actors::renewal::dispatcher::KeygenMode::parse(value.trim())
        .ok_or_else(|| "expected agent or server".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_they_are_typed() {
        for text in ["250ms", "30s", "5m", "1h30m", "24h", "720h", "1m30s", "2s500ms"] {
            assert_eq!(format_duration(duration(text).unwrap()), text);
        }
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn durations_accept_go_style_values() {
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(duration("soon").is_err());
    }

    #[test]
    fn named_keys_parse_admin_flags() {
        let keys = named_keys("ops:0123456789abcdef:admin, ci:fedcba9876543210").unwrap();
        let keys = keys.expose();
        assert_eq!(keys.len(), 2);
        assert!(keys[0].admin && !keys[1].admin);
        assert!(named_keys("ops:short").is_err());
        assert!(named_keys("ops:0123456789abcdef:root").is_err());
    }

    #[test]
    fn database_urls_are_masked() {
        let url = database_url("postgres://certctl:hunter2hunter2@db:5432/certctl").unwrap();
        assert_eq!(url.masked(), "postgres://certctl:***@db:5432/certctl");
    }
}
