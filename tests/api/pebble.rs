//! A real ACME CA for the tests: Debian's Pebble (`/usr/bin/pebble`) on loopback, with
//! `pebble-challtestsrv` as its DNS server (every name resolves to 127.0.0.1, no AAAA, and TXT
//! records set through its management API for dns-01). Pebble's HTTPS certificate comes from a
//! throw-away CA made here, handed to the issuer as `tls_ca_file`. Both processes are killed when
//! the value is dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::scratch_dir;

/// What Pebble is started with.
#[derive(Default)]
pub struct PebbleOptions {
    /// The port Pebble connects to for http-01 (certctl's challenge listener).
    pub http_port: u16,
    /// External Account Binding required, with this key id and base64url HMAC key.
    pub eab: Option<(String, String)>,
    /// Names Pebble refuses (`rejectedIdentifier`).
    pub blocklist: Vec<String>,
    /// Resolve through this DNS server (`127.0.0.1:port`) instead of a challtestsrv of its own.
    pub dns_server: Option<String>,
    /// Alternate chains offered with each certificate, each up to a root of its own
    /// (`PEBBLE_ALTERNATE_ROOTS`).
    pub alternate_roots: u32,
}

/// A running Pebble and its DNS server.
pub struct Pebble {
    pub directory_url: String,
    /// PEM file of the CA that signed Pebble's HTTPS certificate (the issuer's `tls_ca_file`).
    pub tls_ca_file: PathBuf,
    management: String,
    dns_management: String,
    client: reqwest::Client,
    children: Vec<Child>,
    dir: PathBuf,
}

/// A free loopback port (bound and released: another process could take it first, which the
/// start-up check below would notice).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Pebble {
    pub async fn start(options: PebbleOptions) -> Pebble {
        let dir = scratch_dir("pebble");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "certctl test Pebble TLS CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()]).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let server = server_params.signed_by(&server_key, &issuer).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();

        let (acme_port, management_port, dns_port, dns_management_port) =
            (free_port(), free_port(), free_port(), free_port());
        let mut pebble = json!({
            "listenAddress": format!("127.0.0.1:{acme_port}"),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": dir.join("server.pem"),
            "privateKey": dir.join("server.key"),
            "httpPort": options.http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": options.eab.is_some(),
            "domainBlocklist": options.blocklist,
        });
        if let Some((kid, key)) = &options.eab {
            pebble["externalAccountMACKeys"] = json!({ kid: key });
        }
        std::fs::write(dir.join("pebble.json"), json!({ "pebble": pebble }).to_string()).unwrap();

        let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
        let mut children = Vec::new();
        let dns_server = match options.dns_server {
            Some(server) => server,
            None => {
                let dns = Command::new("/usr/bin/pebble-challtestsrv")
                    .args(["-management", &format!("127.0.0.1:{dns_management_port}")])
                    .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
                    .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                    .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
                    .stdout(log("challtestsrv.log"))
                    .stderr(log("challtestsrv.err"))
                    .spawn()
                    .expect("starting /usr/bin/pebble-challtestsrv (Debian package pebble; .ci/run installs it)");
                children.push(dns);
                format!("127.0.0.1:{dns_port}")
            }
        };
        let ca_process = Command::new("/usr/bin/pebble")
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .args(["-dnsserver", &dns_server, "-strict"])
            // No random sleep before validating, no nonces refused on purpose, no reused
            // authorizations: each test sees one validation of its own.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .env("PEBBLE_ALTERNATE_ROOTS", options.alternate_roots.to_string())
            .stdin(Stdio::null())
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("starting /usr/bin/pebble (Debian package pebble; .ci/run installs it)");
        let root = reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap();
        let client =
            reqwest::Client::builder().tls_certs_only([root]).timeout(Duration::from_secs(10)).build().unwrap();
        let pebble = Pebble {
            directory_url: format!("https://127.0.0.1:{acme_port}/dir"),
            tls_ca_file: dir.join("ca.pem"),
            management: format!("https://127.0.0.1:{management_port}"),
            dns_management: format!("http://127.0.0.1:{dns_management_port}"),
            client,
            children: {
                children.push(ca_process);
                children
            },
            dir,
        };
        let started = Instant::now();
        loop {
            if let Ok(response) = pebble.client.get(&pebble.directory_url).send().await {
                if response.status().is_success() {
                    break;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(20), "Pebble did not start: {}", pebble.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        pebble
    }

    /// Pebble's logs, for failure messages.
    pub fn logs(&self) -> String {
        ["pebble.log", "pebble.err", "challtestsrv.err"]
            .iter()
            .map(|f| format!("--- {f}\n{}", std::fs::read_to_string(self.dir.join(f)).unwrap_or_default()))
            .collect()
    }

    /// The root Pebble issues under (it changes at every start).
    pub async fn root_pem(&self) -> String {
        self.root_pem_at(0).await
    }

    /// Root `n`: 0 ends the default chain, 1… the alternates'.
    pub async fn root_pem_at(&self, n: u32) -> String {
        let response = self.client.get(format!("{}/roots/{n}", self.management)).send().await.unwrap();
        assert!(response.status().is_success());
        response.text().await.unwrap()
    }

    /// What Pebble knows about a serial (hex): `{"Status": "Valid" | "Revoked", "Reason": n, …}`.
    pub async fn cert_status(&self, serial_hex: &str) -> Value {
        let serial = serial_hex.trim_start_matches('0').to_ascii_lowercase();
        let url = format!("{}/cert-status-by-serial/{serial}", self.management);
        let response = self.client.get(url).send().await.unwrap();
        assert!(response.status().is_success(), "Pebble knows no serial {serial}");
        response.json().await.unwrap()
    }

    /// The URL of challtestsrv's `/set-txt` (what a dns-01 hook script posts to).
    pub fn set_txt_url(&self) -> String {
        format!("{}/set-txt", self.dns_management)
    }

    /// The URL of challtestsrv's `/clear-txt`.
    pub fn clear_txt_url(&self) -> String {
        format!("{}/clear-txt", self.dns_management)
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
