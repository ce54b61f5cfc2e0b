//! TLS to an external PostgreSQL: a real cluster that accepts TCP connections only over TLS, with
//! a certificate from a test CA. The server connects with verification and
//! `CERTCTL_DATABASE_TLS_CA_PATH`, refuses to start on the untrusted certificate without it, and
//! connects encrypted with `CERTCTL_DATABASE_TLS_VERIFY=false`. These tests start their own cluster,
//! so they need the PostgreSQL server binaries even with `CERTCTL_TEST_DATABASE_URL`.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use certctl::embedded_postgres::binaries::{Binaries, RunAs};
use certctl::startup::Application;

use crate::helpers::{scratch_dir, settings_from, ADMIN_KEY};

/// A TLS-only PostgreSQL on a loopback port, stopped when dropped.
struct TlsCluster {
    child: Child,
    port: u16,
    ca_path: PathBuf,
    socket_dir: PathBuf,
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        // SAFETY: kill on the child we started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
    }
}

fn as_cluster_user(command: &mut Command, run_as: Option<RunAs>) -> &mut Command {
    if let Some(user) = run_as {
        command.uid(user.uid).gid(user.gid);
    }
    command
}

fn own(path: &std::path::Path, run_as: Option<RunAs>) {
    if let Some(user) = run_as {
        std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)).unwrap();
    }
}

fn start_tls_cluster() -> TlsCluster {
    let binaries = Binaries::locate(None).expect("PostgreSQL binaries");
    let run_as = RunAs::resolve().unwrap();
    let dir = scratch_dir("pgtls");
    let pgdata = dir.join("data");
    let socket_dir = dir.join("run");
    for d in [&pgdata, &socket_dir] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
        own(d, run_as);
    }
    let initdb = as_cluster_user(Command::new(&binaries.initdb).current_dir(&pgdata), run_as)
        .arg("-D")
        .arg(&pgdata)
        .args(["--username", "certctl", "--auth", "trust", "--encoding", "UTF8", "--locale", "C"])
        .output()
        .unwrap();
    assert!(initdb.status.success(), "initdb: {}", String::from_utf8_lossy(&initdb.stderr));

    // A test CA and a server certificate for 127.0.0.1 / localhost.
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "certctl test database CA");
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let server_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    for (name, contents) in [("server.crt", server_cert.pem()), ("server.key", server_key.serialize_pem())] {
        let path = pgdata.join(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        own(&path, run_as);
    }
    // TCP only over TLS; the Unix socket stays open for the test's own checks.
    let hba = pgdata.join("pg_hba.conf");
    std::fs::write(&hba, "local all all trust\nhostssl all all 127.0.0.1/32 trust\n").unwrap();
    own(&hba, run_as);

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = as_cluster_user(Command::new(&binaries.postgres).current_dir(&pgdata), run_as)
        .arg("-D")
        .arg(&pgdata)
        .arg("-k")
        .arg(&socket_dir)
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "ssl=on"])
        .args(["-c", "ssl_cert_file=server.crt", "-c", "ssl_key_file=server.key"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(pgdata.join("postmaster.pid")).unwrap_or_default().contains("ready") {
        assert!(Instant::now() < deadline, "the TLS cluster never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    TlsCluster { child, port, ca_path, socket_dir }
}

fn args(cluster: &TlsCluster, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "certctl-server",
        "--server-port",
        "0",
        "--server-tls",
        "false",
        "--database-max-conns",
        "4",
        "--database-connect-timeout",
        // Certificate errors end the wait at once; this only bounds a slow handshake.
        "10s",
        "--data-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(scratch_dir("app").display().to_string());
    args.push("--database-url".into());
    args.push(format!("postgresql://certctl@127.0.0.1:{}/postgres?sslmode=require", cluster.port));
    args.push("--api-keys-named".into());
    args.push(format!("ops:{ADMIN_KEY}:admin"));
    args.push("--config-encryption-key".into());
    args.push(crate::helpers::TEST_SEALING_KEY.into());
    args.push("--scheduler-enabled".into());
    args.push("false".into());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// How many of the server's connections use TLS, asked over the cluster's Unix socket.
async fn tls_connections(cluster: &TlsCluster) -> i64 {
    let mut config = tokio_postgres::Config::new();
    config.host_path(&cluster.socket_dir).port(cluster.port).user("certctl").dbname("postgres");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE ssl AND application_name = 'certctl'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[actix_web::test]
async fn the_server_connects_over_verified_tls_with_the_operators_ca() {
    let cluster = tokio::task::spawn_blocking(start_tls_cluster).await.unwrap();
    let ca = cluster.ca_path.display().to_string();
    let app = Application::build(settings_from(args(&cluster, &["--database-tls-ca-path", &ca]))).await.expect("start");
    let url = format!("http://127.0.0.1:{}/ready", app.port());
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    assert!(tls_connections(&cluster).await >= 1, "the pool's connections use TLS");
    handle.stop(false).await;
}

#[actix_web::test]
async fn an_untrusted_database_certificate_stops_start_up() {
    let cluster = tokio::task::spawn_blocking(start_tls_cluster).await.unwrap();
    let error = Application::build(settings_from(args(&cluster, &[]))).await.err().expect("must not start");
    let message = format!("{error:#}");
    assert!(
        message.contains("could not connect to PostgreSQL") && message.to_lowercase().contains("certificate"),
        "{message}"
    );
}

#[actix_web::test]
async fn verification_can_be_turned_off_keeping_encryption() {
    let cluster = tokio::task::spawn_blocking(start_tls_cluster).await.unwrap();
    let app =
        Application::build(settings_from(args(&cluster, &["--database-tls-verify", "false"]))).await.expect("start");
    let url = format!("http://127.0.0.1:{}/ready", app.port());
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    assert!(tls_connections(&cluster).await >= 1);
    handle.stop(false).await;
}
