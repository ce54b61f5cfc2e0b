//! Settings: invalid values stop start-up with one line naming the variable and what is accepted;
//! rejected secrets are not echoed; missing PostgreSQL binaries say how to fix it; TLS paths come in
//! pairs; `config` masks secrets; `--help` lists every variable with its default; an external database
//! without keys, or without `CERTCTL_CONFIG_ENCRYPTION_KEY`, is refused. And
//! `sigint_drains_and_stops_the_embedded_cluster`, which runs the real binary, sends SIGINT and checks
//! exit code 0 and a clean cluster stop.

use std::process::Command;

use crate::helpers::{cluster, fresh_database, run_server as run};

#[test]
fn invalid_values_name_the_variable_and_what_is_accepted() {
    let cases = [
        ("CERTCTL_DATABASE_MAX_CONNS", "lots", "CERTCTL_DATABASE_MAX_CONNS=\"lots\""),
        ("CERTCTL_DATABASE_MAX_CONNS", "0", "1..=10000"),
        ("CERTCTL_LOG_FORMAT", "xml", "json, text"),
        ("CERTCTL_SERVER_TLS", "maybe", "expected true or false"),
        ("CERTCTL_DATABASE_IDLE_TIMEOUT", "soon", "expected a duration"),
        ("CERTCTL_AUTH_TYPE", "jwt", "api-key, none"),
        ("CERTCTL_API_KEYS_NAMED", "ops:short", "name:key[:admin|:read]"),
        ("CERTCTL_SERVER_PORT", "70000", "CERTCTL_SERVER_PORT"),
        ("CERTCTL_DATABASE_URL", "mysql://nope", "expected a PostgreSQL URL"),
        ("CERTCTL_METRICS_ADDR", "nowhere", "CERTCTL_METRICS_ADDR"),
        ("CERTCTL_ENVIRONMENTS", "prod env", "comma-separated names"),
    ];
    for (var, value, expected) in cases {
        let output = run(&[], &[(var, value)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{var}={value} must stop start-up: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line for {var}: {stderr}");
        assert!(stderr.contains(var), "{var} named in: {stderr}");
        assert!(stderr.contains(expected), "{expected:?} in: {stderr}");
    }
}

#[test]
fn rejected_secrets_are_not_echoed() {
    for (var, value) in [
        ("CERTCTL_DATABASE_URL", "mysql://certctl:topsecretvalue@db/certctl"),
        ("CERTCTL_API_KEYS_NAMED", "ops:topsecretvalue0123:root"),
        ("CERTCTL_AUTH_SECRET", "topsecret"),
    ] {
        let output = run(&[], &[(var, value)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2));
        assert!(stderr.contains(var) && !stderr.contains("topsecret"), "{stderr}");
    }
}

#[test]
fn missing_postgresql_binaries_say_how_to_fix_it() {
    let data_dir = crate::helpers::scratch_dir("nobin");
    let output = run(
        &[],
        &[
            ("CERTCTL_DATA_DIR", data_dir.to_str().unwrap()),
            ("CERTCTL_POSTGRES_BIN_DIR", "/nonexistent/postgresql/bin"),
            ("CERTCTL_SERVER_PORT", "0"),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("CERTCTL_POSTGRES_BIN_DIR=/nonexistent/postgresql/bin"), "{stderr}");
}

#[test]
fn tls_paths_must_come_in_pairs() {
    let output = run(&[], &[("CERTCTL_SERVER_TLS_CERT_PATH", "/tmp/cert.pem")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("CERTCTL_SERVER_TLS_KEY_PATH"), "{stderr}");
}

#[test]
fn config_prints_effective_settings_with_secrets_masked() {
    let output = run(
        &["config"],
        &[
            ("CERTCTL_DATABASE_URL", "postgres://certctl:supersecretpassword@db.example.com/certctl"),
            ("CERTCTL_API_KEYS_NAMED", "ops:supersecretkey0123:admin"),
            ("CERTCTL_DATABASE_MAX_CONNS", "80"),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(stdout.contains("CERTCTL_DATABASE_MAX_CONNS=80"));
    assert!(stdout.contains("CERTCTL_DATABASE_URL=postgres://certctl:***@db.example.com"));
    assert!(stdout.contains("CERTCTL_API_KEYS_NAMED=ops:***:admin"));
    assert!(!stdout.contains("supersecret"), "{stdout}");
    let flag = run(&["--print-config"], &[]);
    assert!(String::from_utf8_lossy(&flag.stdout).contains("CERTCTL_SERVER_PORT=8443"));
}

#[test]
fn help_lists_every_variable_with_its_default() {
    let output = run(&["--help"], &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    for var in [
        "CERTCTL_DATABASE_URL",
        "CERTCTL_DATABASE_MAX_CONNS",
        "CERTCTL_SERVER_PORT",
        "CERTCTL_LOG_FORMAT",
        "CERTCTL_METRICS_ADDR",
    ] {
        assert!(stdout.contains(var), "{var} in --help");
    }
    assert!(stdout.contains("[default: 50]"));
}

#[actix_web::test]
async fn an_external_database_without_keys_refuses_to_start() {
    let db = fresh_database().await;
    let url = cluster().url_for(&db);
    let output = tokio::task::spawn_blocking(move || {
        run(
            &[],
            &[
                ("CERTCTL_DATABASE_URL", url.as_str()),
                ("CERTCTL_SERVER_PORT", "0"),
                ("CERTCTL_SERVER_TLS", "false"),
                ("CERTCTL_CONFIG_ENCRYPTION_KEY", crate::helpers::TEST_SEALING_KEY),
            ],
        )
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("CERTCTL_API_KEYS_NAMED") && stderr.contains("CERTCTL_AUTH_TYPE=none"), "{stderr}");
    assert!(!stderr.contains("panic"), "{stderr}");
}

#[actix_web::test]
async fn an_external_database_without_an_encryption_key_refuses_to_start() {
    let db = fresh_database().await;
    let url = cluster().url_for(&db);
    let output = tokio::task::spawn_blocking(move || {
        run(
            &[],
            &[
                ("CERTCTL_DATABASE_URL", url.as_str()),
                ("CERTCTL_SERVER_PORT", "0"),
                ("CERTCTL_SERVER_TLS", "false"),
                ("CERTCTL_AUTH_TYPE", "none"),
            ],
        )
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("CERTCTL_CONFIG_ENCRYPTION_KEY is required with CERTCTL_DATABASE_URL"), "{stderr}");
    assert!(!stderr.contains("panic"), "{stderr}");
}

#[test]
fn sigint_drains_and_stops_the_embedded_cluster() {
    let data_dir = crate::helpers::scratch_dir("sigint");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let server = Command::new(env!("CARGO_BIN_EXE_certctl-server"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs([
            ("CERTCTL_DATA_DIR", data_dir.to_str().unwrap()),
            ("CERTCTL_SERVER_PORT", port.as_str()),
            ("CERTCTL_SERVER_TLS", "false"),
            ("CERTCTL_LOG_FORMAT", "text"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // Serving, not only listening: /health answers once the server runs.
    let healthy = || {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(format!("127.0.0.1:{port}")) else { return false };
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        let _ = stream.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.1 200")
    };
    while !healthy() {
        assert!(std::time::Instant::now() < deadline, "the server never listened");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // SAFETY: kill on the child we started.
    unsafe { libc::kill(server.id() as i32, libc::SIGINT) };
    let output = server.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("finishing in-flight requests") && stderr.contains("embedded PostgreSQL stopped"),
        "{stderr}"
    );
    assert!(!data_dir.join("postgres/postmaster.pid").exists(), "postgres shut down cleanly");
}
