//! The embedded PostgreSQL: first start (a cluster and an admin key) and a restart reusing both, a
//! second server on the same data dir refused, a killed `postgres` restarted with the server
//! recovering, and an orphaned cluster from a killed server shut down before a new one starts. These
//! tests start clusters of their own, so they always need the PostgreSQL server binaries.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use certctl::embedded_postgres::binaries::{Binaries, RunAs};
use certctl::startup::Application;
use serde_json::Value;

use crate::helpers::{certificate_body, scratch_dir, settings_from};

fn embedded_args(data_dir: &Path) -> Vec<String> {
    [
        "certctl-server",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--server-port",
        "0",
        "--server-tls",
        "false",
        "--database-max-conns",
        "5",
        "--server-workers",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A running embedded-mode server and what is needed to stop it and wait for its shutdown.
struct Running {
    base: String,
    key: Option<String>,
    pid: Option<i32>,
    handle: actix_web::dev::ServerHandle,
    task: actix_web::rt::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(data_dir: &Path) -> anyhow::Result<Running> {
    certctl::telemetry::init_tracing(certctl::settings::LogLevel::Warn, certctl::settings::LogFormat::Text);
    let app = Application::build(settings_from(embedded_args(data_dir))).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let key = app.generated_admin_key().map(str::to_owned);
    let pid = app.embedded_postgres_pid();
    let handle = app.handle();
    let task = actix_web::rt::spawn(app.run_until_stopped());
    Ok(Running { base, key, pid, handle, task })
}

impl Running {
    async fn stop(self) {
        self.handle.stop(true).await;
        self.task.await.expect("server task").expect("clean shutdown");
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

#[actix_web::test]
async fn first_start_makes_a_cluster_and_a_key_and_a_restart_reuses_both() {
    let data_dir = scratch_dir("embedded");
    let first = start(&data_dir).await.expect("first start");
    let key = first.key.clone().expect("a key is generated on first start");
    assert!(data_dir.join("postgres/PG_VERSION").exists());

    let client = client();
    let ready = client.get(format!("{}/ready", first.base)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let created: Value = client
        .post(format!("{}/api/v1/certificates", first.base))
        .bearer_auth(&key)
        .json(&certificate_body("embedded"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first_pid = first.pid.expect("a postgres pid");
    first.stop().await;
    assert!(!Path::new(&format!("/proc/{first_pid}")).exists(), "postgres stopped with the server");

    let second = start(&data_dir).await.expect("second start");
    assert!(second.key.is_none(), "no new key when one is stored");
    let fetched = client
        .get(format!("{}/api/v1/certificates/{}", second.base, created["id"].as_str().unwrap()))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), 200, "the data and the key survived the restart");
    second.stop().await;
}

#[actix_web::test]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let data_dir = scratch_dir("embedded");
    let first = start(&data_dir).await.expect("first start");
    let second = start(&data_dir).await;
    let message = format!("{:#}", second.err().expect("the second server must not start"));
    assert!(message.contains("another certctl-server"), "{message}");
    first.stop().await;
}

#[actix_web::test]
async fn a_killed_postgres_is_restarted_and_the_server_recovers() {
    let data_dir = scratch_dir("embedded");
    let running = start(&data_dir).await.expect("start");
    let key = running.key.clone().unwrap();
    let pid = running.pid.unwrap();
    // SAFETY: kill on a pid we started.
    unsafe { libc::kill(pid, libc::SIGKILL) };

    let client = client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = client
            .get(format!("{}/api/v1/certificates", running.base))
            .bearer_auth(&key)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery after postgres was killed (last status {status})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    running.stop().await;
}

#[actix_web::test]
async fn an_orphaned_postgres_is_shut_down_before_a_new_one_starts() {
    let data_dir = scratch_dir("embedded");
    start(&data_dir).await.expect("first start").stop().await;

    // A postgres left running by a server that was killed: started here, outside any server.
    let binaries = Binaries::locate(None).unwrap();
    let mut orphan = std::process::Command::new(&binaries.postgres);
    orphan
        .arg("-D")
        .arg(data_dir.join("postgres"))
        .arg("-k")
        .arg(data_dir.join("run"))
        .args(["-c", "listen_addresses="])
        .current_dir(data_dir.join("postgres"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(user) = RunAs::resolve().unwrap() {
        orphan.uid(user.uid).gid(user.gid);
    }
    let mut orphan = orphan.spawn().expect("starting the orphan");
    let orphan_pid = orphan.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(data_dir.join("postgres/postmaster.pid")).unwrap_or_default().contains("ready") {
        assert!(Instant::now() < deadline, "orphan never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }

    let running = start(&data_dir).await.expect("start over an orphan");
    // The orphan was shut down (not left running beside ours): waiting on it returns at once.
    orphan.wait().expect("the orphan exited");
    assert!(!Path::new(&format!("/proc/{orphan_pid}")).exists() || running.pid != Some(orphan_pid));
    assert_ne!(running.pid, Some(orphan_pid), "a fresh postgres of our own");
    let ready = client().get(format!("{}/ready", running.base)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    running.stop().await;
}
