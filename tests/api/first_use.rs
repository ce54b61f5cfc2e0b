//! What a new user runs into, each found by trying the server as one would and fixed: query
//! parameters answered in our words (an unknown one names the accepted ones, a repeated one is
//! refused), a failed first start that leaves no half-made data directory, a start-up error
//! without a backtrace in its log line, `--help` and `config` speaking the same duration syntax,
//! and logs without colour codes when nobody is at a terminal.

use std::process::Command;

use crate::helpers::{
    assert_problem, base_args, fresh_database, run_server as server, scratch_dir, settings_from, TestApp, ADMIN_KEY,
};

#[actix_web::test]
async fn unknown_query_parameters_are_named_in_our_words() {
    let app = TestApp::spawn().await;
    let problem = assert_problem(app.get("/api/v1/agents?fields=id").await, 400, "invalid-query").await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("\"fields\"") && detail.contains("accepted: limit, cursor"), "{detail}");
    assert!(!detail.contains("deserialize") && !detail.contains('`'), "no library text: {detail}");

    let problem = assert_problem(app.get("/api/v1/jobs?limit=ten").await, 400, "invalid-query").await;
    assert!(problem["detail"].as_str().unwrap().contains("limit must be an integer"), "{problem}");
    let problem =
        assert_problem(app.get("/api/v1/agents?status=Online&status=Offline").await, 400, "invalid-query").await;
    assert!(problem["detail"].as_str().unwrap().contains("more than once"), "{problem}");
    let problem = assert_problem(app.get("/api/v1/teams?include_total=yes").await, 400, "invalid-query").await;
    assert!(problem["detail"].as_str().unwrap().contains("true or false"), "{problem}");
    assert_problem(app.get("/api/v1/certificates/mc-x/versions?page=2").await, 400, "invalid-query").await;
    assert_eq!(app.get("/api/v1/owners?team_id=t-platform&limit=5").await.status(), 200);
}

#[actix_web::test]
async fn two_authorization_headers_are_refused() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/api/v1/certificates"))
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .header("authorization", "Bearer someone-else-entirely")
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, 401, "unauthorized").await;
    assert!(problem["detail"].as_str().unwrap().contains("one Authorization header"), "{problem}");
}

#[actix_web::test]
async fn a_failed_first_start_leaves_no_data_directory() {
    let occupied = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = occupied.local_addr().unwrap().port().to_string();
    let data_dir = scratch_dir("first-start").join("never-existed");
    let mut args = base_args(&fresh_database().await);
    // TLS on: the self-signed certificate is written into the data dir before the bind fails.
    for (flag, value) in
        [("--server-tls", "true"), ("--server-port", port.as_str()), ("--data-dir", data_dir.to_str().unwrap())]
    {
        args.extend([flag.to_string(), value.to_string()]);
    }
    let failed = certctl::startup::Application::build(settings_from(args)).await;
    let message = format!("{:#}", failed.err().expect("the port is taken"));
    assert!(message.contains("CERTCTL_SERVER_PORT"), "{message}");
    assert!(!data_dir.exists(), "the failed first start removed {}", data_dir.display());
}

#[test]
fn a_start_up_error_is_one_short_line_without_a_backtrace_or_colours() {
    let data_dir = scratch_dir("no-backtrace");
    for format in ["json", "text"] {
        let output = server(
            &[],
            &[
                ("RUST_BACKTRACE", "1"),
                ("CERTCTL_LOG_FORMAT", format),
                ("CERTCTL_DATABASE_URL", "postgres://certctl@127.0.0.1:1/certctl?sslmode=disable"),
                ("CERTCTL_DATABASE_CONNECT_TIMEOUT", "1s"),
                ("CERTCTL_DATA_DIR", data_dir.to_str().unwrap()),
                ("CERTCTL_SERVER_PORT", "0"),
            ],
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        let failed = stderr.lines().find(|l| l.contains("start-up failed")).expect("the start-up error is logged");
        assert!(failed.len() < 2000, "{format}: a short line, not a backtrace ({} bytes): {failed}", failed.len());
        assert!(!stderr.contains("stack backtrace") && !stderr.contains("Backtrace"), "{stderr}");
        assert!(!stderr.contains('\u{1b}'), "{format}: no colour codes in a pipe: {stderr}");
    }
}

#[test]
fn config_prints_durations_as_help_writes_them() {
    let output = server(&["config"], &[("CERTCTL_AUDIT_RETENTION_INTERVAL", "24h"), ("CERTCTL_RENEWAL_LEASE", "90s")]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("CERTCTL_AUDIT_RETENTION_INTERVAL=24h"), "{stdout}");
    assert!(stdout.contains("CERTCTL_RENEWAL_LEASE=1m30s"), "{stdout}");
    assert!(!stdout.contains("day"), "{stdout}");

    let help = server(&["--help"], &[("CERTCTL_DATABASE_MAX_CONNS", "")]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[env: CERTCTL_DATABASE_MAX_CONNS]") && !help.contains("=]"), "{help}");
    assert!(help.contains("rsa-3072") && help.contains("1h30m"), "{help}");
}

#[test]
fn the_agent_logs_without_colour_codes_into_a_pipe() {
    let key_dir = scratch_dir("agent-plain-logs");
    let mut agent = Command::new(env!("CARGO_BIN_EXE_certctl-agent"))
        .args(["--server", "https://127.0.0.1:9", "--key-dir", key_dir.to_str().unwrap()])
        .args(["--agent-id", "ag-plain-logs", "--api-key", "cctl_agent_not-a-real-key"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running certctl-agent");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let _ = agent.kill();
    let output = agent.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("certctl agent started"), "the agent logged: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colour codes: {stderr}");
}

#[test]
fn a_test_run_leaves_no_scratch_directories_behind() {
    if std::env::var_os("CERTCTL_TEST_DATABASE_URL").is_some() || std::env::var_os("CERTCTL_TEST_NESTED").is_some() {
        return;
    }
    // This test binary again, running one test that starts the shared cluster and a server.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "first_use::two_authorization_headers_are_refused", "--test-threads", "1"])
        .env("CERTCTL_TEST_NESTED", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("running the test binary");
    let pid = child.id();
    assert!(child.wait().unwrap().success(), "the nested run passed");
    let marker = format!("-{pid}-");
    let left: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("certctl-") && name.contains(&marker))
        .collect();
    assert!(left.is_empty(), "the run left {left:?}");
}
