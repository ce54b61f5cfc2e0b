//! The real `certctl-agent` binary against a real server over HTTPS (the server's self-signed
//! certificate pinned with `--ca-bundle`): it registers with the bootstrap token (its key file 0600),
//! heartbeats (reaching the database through the aggregator's flush), answers a renewal with its own
//! key and CSR, installs the issued certificate into a file target (certificate, chain, full chain
//! and key, the key 0600; the chain checked with `openssl verify`), runs the reload command, finds the
//! installed certificate in its own discovery scan, rolls back when the reload fails (the previous
//! files restored, the job Failed), installs the key the server made under server key generation
//! (the hand-over audited), stops with exit code 3 when retired, and refuses a plain-HTTP server and a
//! missing key.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{base_args, certificate_body, fresh_database, scratch_dir, settings_from, TestApp, ADMIN_KEY};
use crate::renewal::openssl_verifies;

const BOOTSTRAP_TOKEN: &str = "test-bootstrap-token-0123456789";

/// A TLS server, a client that trusts its certificate, and the bundle the agent is given.
struct Setup {
    app: TestApp,
    client: reqwest::Client,
    ca_bundle: PathBuf,
    key_dir: PathBuf,
}

impl Setup {
    async fn start(extra: &[&str]) -> Setup {
        let db = fresh_database().await;
        let mut args = base_args(&db);
        args.extend(extra.iter().map(|a| a.to_string()));
        let data_dir = PathBuf::from(&args[args.iter().position(|a| a == "--data-dir").unwrap() + 1]);
        args.extend(
            ["--server-tls", "true", "--agent-bootstrap-token", BOOTSTRAP_TOKEN, "--heartbeat-flush-interval", "200ms"]
                .map(String::from),
        );
        let app = TestApp::start(settings_from(args), db).await;
        let ca_bundle = data_dir.join("tls/server.crt");
        let pem = std::fs::read(&ca_bundle).unwrap();
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Setup { app, client, ca_bundle, key_dir: scratch_dir("agent-keys") }
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.client.request(method, self.app.url(path)).bearer_auth(ADMIN_KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn run_loop(&self, name: &str) {
        let (status, body) = self.admin(Method::POST, &format!("/api/v1/admin/scheduler/{name}/run"), None).await;
        assert_eq!(status, 200, "{name}: {body}");
    }

    fn agent(&self) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_certctl-agent"));
        command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).args([
            "--server",
            &self.app.address,
            "--ca-bundle",
            self.ca_bundle.to_str().unwrap(),
            "--key-dir",
            self.key_dir.to_str().unwrap(),
            "--log-level",
            "info,certctl_agent=debug",
        ]);
        command
    }

    /// `certctl-agent register`: the new agent's id. Run without blocking: the server under test
    /// answers on this test's own runtime.
    async fn register(&self, name: &str) -> String {
        let mut command = tokio::process::Command::from(self.agent());
        let output =
            command.args(["register", "--name", name, "--bootstrap-token", BOOTSTRAP_TOKEN]).output().await.unwrap();
        assert!(output.status.success(), "register: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }

    /// The running agent, killed when dropped.
    fn run(&self, extra: &[&str]) -> Running {
        let log = self.key_dir.join("agent.log");
        let child = self
            .agent()
            .args(["--heartbeat-interval", "200ms", "--poll-interval", "300ms"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Running { child, log }
    }

    /// A file target of `agent` writing into `dir`, reloading with `reload`.
    async fn file_target(&self, agent: &str, dir: &Path, reload: &str) -> String {
        let body = json!({
            "name": format!("files of {agent}"),
            "type": "file",
            "agent_id": agent,
            "config": {"directory": dir.to_str().unwrap(), "reload_command": reload, "reload_timeout_seconds": 10}
        });
        let (status, target) = self.admin(Method::POST, "/api/v1/targets", Some(body)).await;
        assert_eq!(status, 201, "{target}");
        target["id"].as_str().unwrap().to_string()
    }

    async fn certificate_on(&self, name: &str, target: &str) -> String {
        let mut body = certificate_body(name);
        body["target_ids"] = json!([target]);
        let (status, created) = self.admin(Method::POST, "/api/v1/certificates", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        created["id"].as_str().unwrap().to_string()
    }

    /// The certificate's newest deployment job once it has ended.
    async fn deployment_ended(&self, certificate: &str, after: usize, agent: &Running) -> Value {
        let path = format!("/api/v1/jobs?type=Deployment&certificate_id={certificate}&limit=100");
        eventually(Duration::from_secs(30), agent, || async {
            let (_, page) = self.admin(Method::GET, &path, None).await;
            let jobs = page["data"].as_array().cloned().unwrap_or_default();
            (jobs.len() > after && matches!(jobs[0]["status"].as_str(), Some("Completed" | "Failed")))
                .then(|| jobs[0].clone())
        })
        .await
    }
}

struct Running {
    child: std::process::Child,
    log: PathBuf,
}

impl Running {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 100 ms until it gives a value; fails with the agent's log after `limit`.
async fn eventually<T, F, Fut>(limit: Duration, agent: &Running, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < limit, "timed out; the agent's log:\n{}", agent.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The DER SubjectPublicKeyInfo of the first certificate in a PEM file.
fn leaf_spki(pem: &str) -> Vec<u8> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    block.parse_x509().unwrap().tbs_certificate.subject_pki.raw.to_vec()
}

#[actix_web::test]
async fn the_agent_renews_with_its_own_key_installs_and_reloads_and_rolls_back_a_failed_reload() {
    let setup = Setup::start(&[]).await;
    let agent_id = setup.register("web-1").await;
    assert!(agent_id.starts_with("ag-"), "{agent_id}");
    assert_eq!(mode(&setup.key_dir.join("agent.key")), 0o600, "the agent's key is private");

    let deploy_dir = scratch_dir("deploy");
    let flag = deploy_dir.join("break-reload");
    let reload = format!("test ! -e {} && echo reloaded >> reloads.log", flag.display());
    let target = setup.file_target(&agent_id, &deploy_dir, &reload).await;
    let certificate = setup.certificate_on("agent-e2e", &target).await;
    let agent = setup.run(&["--discovery-dirs", deploy_dir.to_str().unwrap(), "--discovery-interval", "500ms"]);

    // Heartbeats reach the database through the aggregator's flush.
    eventually(Duration::from_secs(15), &agent, || async {
        let (_, row) = setup.admin(Method::GET, &format!("/api/v1/agents/{agent_id}"), None).await;
        (row["last_heartbeat_at"].is_string() && row["os"] == std::env::consts::OS).then_some(())
    })
    .await;

    // The renewal waits for a CSR; the agent answers it, the dispatcher issues, the agent installs.
    setup.run_loop("renewal_scan").await;
    setup.run_loop("job_processor").await;
    let deployed = setup.deployment_ended(&certificate, 0, &agent).await;
    assert_eq!(deployed["status"], "Completed", "{deployed}\n{}", agent.log());
    assert_eq!(deployed["agent_id"], agent_id.as_str());

    let ca_request = setup.client.get(setup.app.url("/api/v1/issuers/iss-local/ca")).bearer_auth(ADMIN_KEY);
    let ca = ca_request.send().await.unwrap().text().await.unwrap();
    let fullchain = std::fs::read_to_string(deploy_dir.join("fullchain.pem")).unwrap();
    assert!(openssl_verifies(&ca, &fullchain), "the installed chain verifies against the local CA");
    let cert = std::fs::read_to_string(deploy_dir.join("cert.pem")).unwrap();
    assert!(fullchain.starts_with(&cert) && fullchain.len() > cert.len(), "fullchain is the leaf then the chain");
    let chain = std::fs::read_to_string(deploy_dir.join("chain.pem")).unwrap();
    assert!(fullchain.ends_with(&chain) && chain.contains("BEGIN CERTIFICATE"));
    let key = std::fs::read_to_string(deploy_dir.join("privkey.pem")).unwrap();
    assert_eq!(mode(&deploy_dir.join("privkey.pem")), 0o600, "the installed key is private");
    let key_pair = rcgen::KeyPair::from_pem(&key).unwrap();
    assert_eq!(
        rcgen::PublicKeyData::subject_public_key_info(&key_pair),
        leaf_spki(&cert),
        "the certificate is for the key the agent generated"
    );
    assert_eq!(std::fs::read_to_string(deploy_dir.join("reloads.log")).unwrap(), "reloaded\n");
    let fingerprint = deployed["verification_fingerprint"].as_str().unwrap().to_string();

    let (_, renewals) =
        setup.admin(Method::GET, &format!("/api/v1/jobs?type=Renewal&certificate_id={certificate}"), None).await;
    let (_, issuances) =
        setup.admin(Method::GET, &format!("/api/v1/jobs?type=Issuance&certificate_id={certificate}"), None).await;
    let first =
        renewals["data"].as_array().unwrap().iter().chain(issuances["data"].as_array().unwrap()).next().cloned();
    assert_eq!(first.unwrap()["status"], "Completed", "the issuance job ended Completed");

    // The agent's discovery scan finds the certificate it installed (cert.pem, fullchain.pem).
    let found = eventually(Duration::from_secs(15), &agent, || async {
        let path = format!("/api/v1/discovered-certificates?agent_id={agent_id}&limit=100");
        let (_, page) = setup.admin(Method::GET, &path, None).await;
        let rows = page["data"].as_array().cloned().unwrap_or_default();
        let ours: Vec<Value> = rows.into_iter().filter(|r| r["fingerprint_sha256"] == fingerprint.as_str()).collect();
        (ours.len() >= 2).then_some(ours)
    })
    .await;
    assert!(found.iter().all(|r| r["common_name"] == "agent-e2e.example.com" && r["source_format"] == "PEM"));
    assert!(found.iter().any(|r| r["source_path"].as_str().unwrap().ends_with("/cert.pem")), "{found:?}");

    // A renewal whose reload fails: the previous files come back and the job is Failed.
    std::fs::write(&flag, "").unwrap();
    let (status, body) = setup.admin(Method::POST, &format!("/api/v1/certificates/{certificate}/renew"), None).await;
    assert_eq!(status, 202, "{body}");
    let failed = setup.deployment_ended(&certificate, 1, &agent).await;
    assert_eq!(failed["status"], "Failed", "{failed}");
    let error = failed["last_error"].as_str().unwrap();
    assert!(error.contains("reload command") && error.contains("restored"), "{error}");
    assert_eq!(std::fs::read_to_string(deploy_dir.join("cert.pem")).unwrap(), cert, "the previous certificate is back");
    assert_eq!(std::fs::read_to_string(deploy_dir.join("privkey.pem")).unwrap(), key, "and its key");
    assert!(deploy_dir.join("cert.pem.prev").exists(), "the previous set is kept beside the new one");
    assert_eq!(std::fs::read_to_string(deploy_dir.join("reloads.log")).unwrap(), "reloaded\n", "no reload succeeded");
    let (_, now) = setup.admin(Method::GET, &format!("/api/v1/certificates/{certificate}"), None).await;
    assert!(now["last_deployment_at"].is_string(), "{now}");
    assert_ne!(failed["certificate_version_id"], deployed["certificate_version_id"]);
    assert_eq!(fingerprint.len(), 64);
}

#[actix_web::test]
async fn with_server_key_generation_the_agent_installs_the_key_the_server_made() {
    let setup = Setup::start(&["--keygen-mode", "server"]).await;
    let agent_id = setup.register("web-3").await;
    let deploy_dir = scratch_dir("deploy-server-key");
    let target = setup.file_target(&agent_id, &deploy_dir, "true").await;
    let certificate = setup.certificate_on("server-key", &target).await;
    let agent = setup.run(&[]);
    setup.run_loop("renewal_scan").await;
    setup.run_loop("job_processor").await;
    let deployed = setup.deployment_ended(&certificate, 0, &agent).await;
    assert_eq!(deployed["status"], "Completed", "{deployed}\n{}", agent.log());
    let key = std::fs::read_to_string(deploy_dir.join("privkey.pem")).unwrap();
    let cert = std::fs::read_to_string(deploy_dir.join("cert.pem")).unwrap();
    let key_pair = rcgen::KeyPair::from_pem(&key).unwrap();
    assert_eq!(rcgen::PublicKeyData::subject_public_key_info(&key_pair), leaf_spki(&cert));
    let (_, audit) = setup.admin(Method::GET, &format!("/api/v1/audit?resource_id={certificate}"), None).await;
    let actions: Vec<&str> = audit["data"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"certificate.key_fetch"), "handing the key over is audited: {actions:?}");
}

#[actix_web::test]
async fn a_retired_agent_stops_with_a_clear_message() {
    let setup = Setup::start(&[]).await;
    let agent_id = setup.register("web-2").await;
    let mut agent = setup.run(&[]);
    eventually(Duration::from_secs(15), &agent, || async {
        let (_, row) = setup.admin(Method::GET, &format!("/api/v1/agents/{agent_id}"), None).await;
        row["last_heartbeat_at"].is_string().then_some(())
    })
    .await;
    let (status, retired) =
        setup.admin(Method::DELETE, &format!("/api/v1/agents/{agent_id}?reason=decommissioned"), None).await;
    assert_eq!((status, retired["status"].as_str()), (200, Some("Retired")), "{retired}");
    let started = Instant::now();
    let code = loop {
        if let Some(status) = agent.child.try_wait().unwrap() {
            break status.code();
        }
        assert!(started.elapsed() < Duration::from_secs(15), "the agent kept running:\n{}", agent.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(code, Some(3), "{}", agent.log());
    assert!(agent.log().contains("is retired"), "{}", agent.log());
}

#[actix_web::test]
async fn the_agent_refuses_a_plain_http_server_and_a_missing_key() {
    let key_dir = scratch_dir("agent-misconfigured");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_certctl-agent"))
            .env_clear()
            .args(["--key-dir", key_dir.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let plain = run(&["--server", "http://127.0.0.1:1", "--agent-id", "ag-1", "--api-key", "cctl_agent_x"]);
    assert_eq!(plain.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&plain.stderr).contains("https://"), "{}", String::from_utf8_lossy(&plain.stderr));
    let unregistered = run(&["--server", "https://127.0.0.1:1"]);
    assert_eq!(unregistered.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unregistered.stderr).contains("register"));
}
