//! The server tried as an attacker (or a careless client) would, each finding reproduced by a test
//! before it was fixed: refusals that HTTP/2 clients must still receive, duplicate headers, bodies
//! and JSON of the wrong shape, CSRs that hide a second request, names that only look like DNS
//! names, and values too small to mean anything.

use crate::helpers::{base_args, fresh_database, scratch_dir, settings_from, TestApp};

/// A TLS test server, and the path of the certificate clients pin.
async fn tls_app() -> (TestApp, String) {
    let db = fresh_database().await;
    let mut args = base_args(&db);
    let data_dir = args[args.iter().position(|a| a == "--data-dir").unwrap() + 1].clone();
    args.extend(["--server-tls".to_string(), "true".to_string()]);
    (TestApp::start(settings_from(args), db).await, format!("{data_dir}/tls/server.crt"))
}

/// curl's status line for a POST of `body_file` over HTTP/2 with `auth` (or none), and curl's
/// exit code.
/// (The test's own runtime must keep running meanwhile: the server's actors live on it.)
async fn curl_post(app: &TestApp, ca: &str, path: &str, body_file: &str, auth: Option<&str>) -> (String, Option<i32>) {
    let mut command = tokio::process::Command::new("curl");
    command.args(["--silent", "--http2", "--max-time", "30", "--cacert", ca, "-o", "/dev/null"]);
    command.args(["-w", "%{http_version} %{http_code}"]);
    command.args(["-H", "Content-Type: application/json", "--data-binary", &format!("@{body_file}")]);
    if let Some(auth) = auth {
        command.args(["-H", &format!("Authorization: Bearer {auth}")]);
    }
    let output = command.arg(app.url(path)).output().await.expect("running curl");
    (String::from_utf8_lossy(&output.stdout).into_owned(), output.status.code())
}

#[actix_web::test]
async fn http2_clients_receive_the_refusal_of_a_post_they_are_still_sending() {
    let (app, ca) = tls_app().await;
    let dir = scratch_dir("h2-refusals");
    let small = dir.join("small.json");
    std::fs::write(&small, format!("{{\"name\": \"{}\"}}", "x".repeat(80))).unwrap();
    let large = dir.join("large.json");
    std::fs::write(&large, vec![b' '; 10 * 1024 * 1024]).unwrap();
    let (small, large) = (small.to_str().unwrap(), large.to_str().unwrap());

    for attempt in 0..20 {
        let (status, code) = curl_post(&app, &ca, "/api/v1/teams", small, None).await;
        assert_eq!((status.as_str(), code), ("2 401", Some(0)), "attempt {attempt} without a key");
        let (status, code) = curl_post(&app, &ca, "/api/v1/teams", small, Some("a-wrong-key-of-some-length")).await;
        assert_eq!((status.as_str(), code), ("2 401", Some(0)), "attempt {attempt} with a wrong key");
    }
    let (status, code) = curl_post(&app, &ca, "/api/v1/teams", large, None).await;
    assert_eq!((status.as_str(), code), ("2 401", Some(0)), "a 10 MB body without a key");
    let (status, code) = curl_post(&app, &ca, "/api/v1/teams", large, Some(crate::helpers::ADMIN_KEY)).await;
    assert_eq!((status.as_str(), code), ("2 413", Some(0)), "a 10 MB body over the limit");
}

#[actix_web::test]
async fn keys_are_refused_what_their_role_does_not_allow_before_the_body_is_read() {
    use crate::helpers::{assert_problem, READ_KEY, USER_KEY};
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let as_key =
        |key: &'static str, method: Method, path: &str| app.client.request(method, app.url(path)).bearer_auth(key);

    // A read-only key reads, and is refused every change, whatever the body.
    assert_eq!(as_key(READ_KEY, Method::GET, "/api/v1/certificates").send().await.unwrap().status(), 200);
    assert_eq!(as_key(READ_KEY, Method::GET, "/api/v1/targets").send().await.unwrap().status(), 200);
    for body in ["{\"name\": 1}", "not json", "{\"name\": \"Valid team\"}"] {
        let response = as_key(READ_KEY, Method::POST, "/api/v1/teams")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 403, "forbidden").await;
        assert!(problem["detail"].as_str().unwrap().contains("read-only"), "{problem}");
    }

    // A writer cannot re-point a target at an agent (whose work would then carry the target's
    // config secrets) or create one; a bad body and a good one get the same 403.
    let register = app.admin(Method::POST, "/api/v1/agents").json(&serde_json::json!({"name": "mallory"}));
    let agent: serde_json::Value = register.send().await.unwrap().json().await.unwrap();
    for body in [serde_json::json!({"agent_id": agent["id"]}), serde_json::json!({"agent_id": 42})] {
        let response =
            as_key(USER_KEY, Method::PUT, "/api/v1/targets/tgt-nginx-prod").json(&body).send().await.unwrap();
        let problem = assert_problem(response, 403, "forbidden").await;
        assert!(problem["detail"].as_str().unwrap().contains("admin key"), "{problem}");
    }
    let create =
        serde_json::json!({"name": "t", "type": "file", "agent_id": agent["id"], "config": {"directory": "/x"}});
    assert_problem(
        as_key(USER_KEY, Method::POST, "/api/v1/targets").json(&create).send().await.unwrap(),
        403,
        "forbidden",
    )
    .await;
    // Writers still write the inventory.
    let team = as_key(USER_KEY, Method::POST, "/api/v1/teams").json(&serde_json::json!({"name": "Writers"}));
    assert_eq!(team.send().await.unwrap().status(), 201);
}

#[actix_web::test]
async fn bodies_must_be_json_objects_and_errors_name_no_rust_types() {
    use crate::helpers::{assert_problem, certificate_body};
    let app = TestApp::spawn().await;
    let body = certificate_body("as-array");
    let fields = ["id", "name", "common_name", "sans", "environment", "owner_id", "team_id", "issuer_id"];
    let mut values: Vec<serde_json::Value> = fields.iter().map(|f| body[*f].clone()).collect();
    values[0] = serde_json::json!("mc-array");
    values.extend([body["renewal_policy_id"].clone(), serde_json::Value::Null, body["tags"].clone()]);
    values.push(serde_json::json!([]));
    assert_eq!(values.len(), 12);
    let problem =
        assert_problem(app.post_certificate(&serde_json::Value::Array(values)).await, 400, "invalid-body").await;
    assert!(problem["detail"].as_str().unwrap().contains("JSON object"), "{problem}");
    assert_eq!(app.get("/api/v1/certificates/mc-array").await.status(), 404, "nothing was created");

    let mut wrong = certificate_body("wrong-type");
    wrong["sans"] = serde_json::json!({"a": 1});
    let problem = assert_problem(app.post_certificate(&wrong).await, 400, "invalid-body").await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(!detail.contains("NewCertificate") && !detail.contains("line "), "{detail}");
}

#[actix_web::test]
async fn get_routes_answer_head() {
    use reqwest::Method;
    let app = TestApp::spawn().await;
    for path in ["/health", "/api/v1/certificates", "/api/v1/teams", "/api/v1/version"] {
        let response = app.admin(Method::HEAD, path).send().await.unwrap();
        assert_eq!(response.status(), 200, "HEAD {path}");
        assert!(response.bytes().await.unwrap().is_empty(), "no body for HEAD {path}");
    }
    let response = app.admin(Method::HEAD, "/api/v1/certificates/mc-none").send().await.unwrap();
    assert_eq!(response.status(), 404, "HEAD answers what GET would");
}

#[actix_web::test]
async fn long_urls_and_large_headers_get_problem_documents() {
    use crate::helpers::assert_problem;
    let app = TestApp::spawn().await;
    let long = format!("/api/v1/certificates?q={}", "a".repeat(10_000));
    let problem = assert_problem(app.get(&long).await, 414, "uri-too-long").await;
    assert!(problem["detail"].as_str().unwrap().contains("8192"), "{problem}");
    let big = app.admin(reqwest::Method::GET, "/api/v1/certificates").header("x-padding", "p".repeat(40_000));
    assert_problem(big.send().await.unwrap(), 431, "headers-too-large").await;
    let mut many = app.admin(reqwest::Method::GET, "/api/v1/certificates");
    for i in 0..70 {
        many = many.header(format!("x-h{i}"), "v");
    }
    assert_problem(many.send().await.unwrap(), 431, "headers-too-large").await;
}

#[actix_web::test]
async fn a_body_that_trickles_in_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(&["--request-body-timeout", "1s"]).await;
    let address = app.address.trim_start_matches("http://").to_string();
    let (mut reader, mut writer) = tokio::net::TcpStream::connect(&address).await.unwrap().into_split();
    let head = format!(
        "POST /api/v1/teams HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        crate::helpers::ADMIN_KEY
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    // One byte every 300 ms, for up to 9 s: far slower than the 1 s the body may take.
    for _ in 0..30 {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        if writer.write_all(b" ").await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), reader.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "a 408 for the slow body: {text}");
    assert!(text.contains("request-timeout"), "{text}");
    let _ = started;
}

#[actix_web::test]
async fn names_and_values_that_only_look_valid_are_refused() {
    use crate::helpers::{assert_problem, certificate_body};
    use reqwest::Method;
    let app = TestApp::spawn().await;
    for (field, value) in [
        ("common_name", "*.com"),
        ("common_name", "1.2.3.256"),
        ("common_name", "0x7f.0.0.1"),
        ("name", "pay\u{202e}lap.example"),
        ("name", "zero\u{200b}width"),
    ] {
        let mut body = certificate_body("looks-valid");
        body[field] = serde_json::json!(value);
        if field == "common_name" {
            body["sans"] = serde_json::json!([]);
        }
        let problem = assert_problem(app.post_certificate(&body).await, 422, "validation-failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{value:?}: {problem}");
    }
    let policy = serde_json::json!({"name": "tiny", "renew_at_fraction": 1e-320});
    let response = app.admin(Method::POST, "/api/v1/renewal-policies").json(&policy).send().await.unwrap();
    let problem = assert_problem(response, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "renew_at_fraction");

    let agent: serde_json::Value = app
        .admin(Method::POST, "/api/v1/agents")
        .json(&serde_json::json!({"name": "sans"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sans: Vec<String> = (0..100_000).map(|i| format!("n{i}.example.com")).collect();
    let report = serde_json::json!({"certificates": [{
        "fingerprint_sha256": "ab".repeat(32), "common_name": "x", "sans": sans, "source_path": "/x.pem",
        "source_format": "PEM"
    }]});
    let path = format!("/api/v1/agents/{}/discoveries", agent["id"].as_str().unwrap());
    let response = app.admin(Method::POST, &path).json(&report).send().await.unwrap();
    let status = response.status().as_u16();
    assert!(status == 413 || status == 422, "100,000 SANs are refused: {status}");
}

#[actix_web::test]
async fn a_config_the_database_would_refuse_never_reaches_it_or_its_log() {
    use crate::helpers::{assert_problem, cluster};
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let secret = "hunter2-never-in-any-log";
    let body = serde_json::json!({"name": "nul", "type": "file", "config": {"password": secret, "zzz": "a\u{0000}b"}});
    let response = app.admin(Method::POST, "/api/v1/targets").json(&body).send().await.unwrap();
    let problem = assert_problem(response, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "config", "{problem}");
    if let Some(log) = cluster().log_text() {
        assert!(!log.contains(secret), "the secret reached postgres.log");
    }
}

/// Found by the fuzzer: PostgreSQL keeps a jsonb number as an exact decimal and prints it in full,
/// so a config holding 1.7976931348623157e308 was stored, then could not be read back: the
/// issuer's GET answered 500 and its CA route panicked the worker.
#[actix_web::test]
async fn config_numbers_that_would_not_read_back_are_refused() {
    use crate::helpers::assert_problem;
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let huge = serde_json::json!({"config": {"ttl": 1.797_693_134_862_315_7e308, "deep": {"x": -1e300}}});
    let response = app.admin(Method::PUT, "/api/v1/issuers/iss-local").json(&huge).send().await.unwrap();
    let problem = assert_problem(response, 422, "validation-failed").await;
    assert_eq!(problem["errors"][0]["field"], "config", "{problem}");
    let created = serde_json::json!({"name": "big", "type": "file", "config": {"port": 1e16}});
    let response = app.admin(Method::POST, "/api/v1/targets").json(&created).send().await.unwrap();
    assert_problem(response, 422, "validation-failed").await;
    // Ordinary numbers still pass, and the issuer still reads.
    let fine = serde_json::json!({"config": {"ttl": 86_400, "ratio": 0.5}});
    let response = app.admin(Method::PUT, "/api/v1/issuers/iss-local").json(&fine).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(app.admin(Method::GET, "/api/v1/issuers/iss-local/ca").send().await.unwrap().status(), 200);
}

#[actix_web::test]
async fn secrets_are_masked_by_type_by_name_and_by_value_in_answers_and_audit_rows() {
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let pem = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMG\n-----END PRIVATE KEY-----\n";
    let config = serde_json::json!({
        "x-Api-Key": "s1", "api-key": "s2", "passwd": "s3", "pwd": "s4", "auth": "s5", "authorization": "s6",
        "access_key": "s7", "pin": "s8", "kubeconfig": "s9", "some_blob": pem,
        "endpoint": "https://ops:s10@bigip.example/mgmt", "role_id": "s11", "directory": "/etc/certs"
    });
    let body = serde_json::json!({"name": "masked", "type": "kubernetessecrets", "config": config});
    let created: serde_json::Value =
        app.admin(Method::POST, "/api/v1/targets").json(&body).send().await.unwrap().json().await.unwrap();
    let shown = created["config"].to_string();
    for secret in ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "MIGHAgEAMBMG"] {
        assert!(
            !shown.contains(&format!("\"{secret}\"")) && !shown.contains(&format!(":{secret}@")),
            "{secret} in {shown}"
        );
    }
    assert_eq!(created["config"]["directory"], "/etc/certs", "plain fields stay readable");
    assert_eq!(created["config"]["endpoint"], "https://ops:***@bigip.example/mgmt");
    let issuer = serde_json::json!({"name": "v", "type": "vault", "config": {"role_id": "r-123", "mount": "pki"}});
    let created: serde_json::Value =
        app.admin(Method::POST, "/api/v1/issuers").json(&issuer).send().await.unwrap().json().await.unwrap();
    assert_eq!(created["config"], serde_json::json!({"role_id": "***", "mount": "pki"}), "declared by the type");

    let audit = app.get("/api/v1/audit?resource_type=target&limit=10").await.text().await.unwrap();
    for secret in ["\"s1\"", "\"s9\"", "s10@", "MIGHAgEAMBMG"] {
        assert!(!audit.contains(secret), "{secret} in the audit trail");
    }
    let audit = app.get("/api/v1/audit?resource_type=issuer&limit=10").await.text().await.unwrap();
    assert!(!audit.contains("r-123"), "the declared field in the audit trail");
}

#[actix_web::test]
async fn cursors_open_only_unedited_and_on_their_own_list() {
    use crate::helpers::assert_problem;
    let app = TestApp::spawn().await;
    let teams: serde_json::Value = app.get("/api/v1/teams?limit=1").await.json().await.unwrap();
    let cursor = teams["next_cursor"].as_str().expect("the demo teams fill more than one page").to_string();
    assert_eq!(app.get(&format!("/api/v1/teams?limit=1&cursor={cursor}")).await.status(), 200);
    assert_problem(app.get(&format!("/api/v1/owners?limit=1&cursor={cursor}")).await, 400, "invalid-query").await;
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut bytes = engine.decode(&cursor).unwrap();
    bytes[1] ^= 0x01;
    let edited = engine.encode(&bytes);
    assert_problem(app.get(&format!("/api/v1/teams?limit=1&cursor={edited}")).await, 400, "invalid-query").await;
    let forged = engine.encode("c+|t-platform|0");
    assert_problem(app.get(&format!("/api/v1/teams?limit=1&cursor={forged}")).await, 400, "invalid-query").await;
}

#[actix_web::test]
async fn connections_that_never_start_tls_do_not_stall_new_clients() {
    let (app, ca) = tls_app().await;
    let address = app.address.trim_start_matches("https://").to_string();
    // 600 connections that never send a ClientHello, reopened when the server closes them.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut holders = Vec::new();
    for _ in 0..600 {
        let (address, stop) = (address.clone(), stop.clone());
        holders.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // From another loopback address than the clients measured below, as an attacker's
                // would be (one address alone is also held to CERTCTL_MAX_CONNECTIONS_PER_PEER).
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind("127.0.0.3:0".parse().unwrap()).unwrap();
                if let Ok(mut stream) = socket.connect(address.parse().unwrap()).await {
                    let mut buf = [0u8; 1];
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_secs(5),
                        tokio::io::AsyncReadExt::read(&mut stream, &mut buf),
                    )
                    .await;
                }
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let pem = std::fs::read(&ca).unwrap();
    let mut slowest = std::time::Duration::ZERO;
    for _ in 0..5 {
        // A new client, so a new connection and handshake each time: what a new client sees.
        let fresh = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
        let started = std::time::Instant::now();
        let response = fresh.get(app.url("/health")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for holder in holders {
        holder.abort();
    }
    assert!(slowest < std::time::Duration::from_secs(1), "a new client waited {slowest:?}");
}

/// A TLS stream to `app` that negotiated HTTP/2, trusting the certificate at `ca`.
async fn h2_tls(app: &TestApp, ca: &str) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let address = app.address.trim_start_matches("https://").to_string();
    let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await.unwrap()
}

/// An HTTP/2 connection over TLS to `app`, trusting the certificate at `ca`.
async fn h2_connection(app: &TestApp, ca: &str) -> h2::client::SendRequest<actix_web::web::Bytes> {
    let (send, connection) = h2::client::handshake(h2_tls(app, ca).await).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send
}

#[actix_web::test]
async fn a_rapid_reset_flood_is_survived() {
    let (app, ca) = tls_app().await;
    let mut send = h2_connection(&app, &ca).await;
    let url = app.url("/api/v1/certificates");
    let mut sent = 0;
    // Open streams and cancel each at once (CVE-2023-44487's pattern), as fast as the server lets us.
    for _ in 0..20_000 {
        let Ok(ready) = send.clone().ready().await else { break };
        send = ready;
        let request = http::Request::get(&url).body(()).unwrap();
        match send.send_request(request, true) {
            Ok((response, _)) => drop(response),
            Err(_) => break,
        }
        sent += 1;
    }
    assert!(sent > 0);
    // The server still answers new clients at once.
    let mut fresh = h2_connection(&app, &ca).await;
    fresh = fresh.ready().await.unwrap();
    let (response, _) = fresh.send_request(http::Request::get(app.url("/health")).body(()).unwrap(), true).unwrap();
    let response = tokio::time::timeout(std::time::Duration::from_secs(2), response).await.unwrap().unwrap();
    assert_eq!(response.status(), 200, "after {sent} reset streams");
}

#[actix_web::test]
async fn filters_are_values_never_sql_and_nesting_is_bounded() {
    use crate::helpers::{assert_problem, certificate_body};
    let app = TestApp::spawn().await;
    app.create_certificate("kept").await;
    for attack in ["' OR 1=1 --", "x'); DROP TABLE managed_certificates; --", "%' OR '1'='1", "\\' UNION SELECT 1"] {
        let encoded: String = url_encode(attack);
        for path in [
            format!("/api/v1/certificates?q={encoded}"),
            format!("/api/v1/certificates?environment={encoded}"),
            format!("/api/v1/teams?q={encoded}"),
            format!("/api/v1/agents?os={encoded}"),
            format!("/api/v1/audit?actor={encoded}"),
            format!("/api/v1/jobs?certificate_id={encoded}"),
        ] {
            let response = app.get(&path).await;
            let status = response.status().as_u16();
            assert!(status == 200 || status == 400, "{path}: {status}");
            if status == 200 {
                let page: serde_json::Value = response.json().await.unwrap();
                assert_eq!(page["data"].as_array().map(Vec::len), Some(0), "{path} matched nothing: {page}");
            }
        }
    }
    let all: serde_json::Value = app.get("/api/v1/certificates?q=kept").await.json().await.unwrap();
    assert_eq!(all["data"].as_array().unwrap().len(), 1, "the table is intact");

    let mut deep = certificate_body("deep");
    let mut nested = serde_json::json!("bottom");
    for _ in 0..200 {
        nested = serde_json::json!({ "n": nested });
    }
    deep["tags"] = nested;
    let status = app.post_certificate(&deep).await.status().as_u16();
    assert_eq!(status, 400, "200 levels of nesting are refused");
    let huge = app
        .admin(reqwest::Method::POST, "/api/v1/teams")
        .header("content-type", "application/json")
        .body(format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024)));
    assert_problem(huge.send().await.unwrap(), 413, "payload-too-large").await;
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[test]
fn no_secret_reaches_the_logs_or_the_metrics() {
    use std::io::{BufRead, BufReader};
    let data_dir = scratch_dir("no-secret-logs");
    let (admin, token, passphrase) =
        ("admin-key-no-log-0123456789", "bootstrap-no-log-0123456789", "sealing-no-log-0123456789");
    let db = actix_web::rt::System::new().block_on(fresh_database());
    let url = crate::helpers::cluster().url_for(&db);
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_certctl-server"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs([
            ("CERTCTL_DATABASE_URL", url.as_str()),
            ("CERTCTL_SERVER_PORT", "0"),
            ("CERTCTL_SERVER_TLS", "false"),
            ("CERTCTL_LOG_LEVEL", "debug"),
            ("CERTCTL_API_KEYS_NAMED", &format!("ops:{admin}:admin")),
            ("CERTCTL_AGENT_BOOTSTRAP_TOKEN", token),
            ("CERTCTL_CONFIG_ENCRYPTION_KEY", passphrase),
            ("CERTCTL_DATA_DIR", data_dir.to_str().unwrap()),
            ("CERTCTL_DEMO_SEED", "false"),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running certctl-server");
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let address = loop {
        let line = lines.next().expect("the server logs until it listens").unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("certctl server listening") {
            let start = line.find("http://").unwrap();
            break line[start..].split(|c: char| c == '"' || c.is_whitespace()).next().unwrap().to_string();
        }
    };
    let secret = "target-secret-no-log-0123";
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let metrics = runtime.block_on(async {
        let client = reqwest::Client::new();
        let body = serde_json::json!({"name": "t", "type": "file", "config": {"password": secret, "directory": "/x"}});
        let created =
            client.post(format!("{address}/api/v1/targets")).bearer_auth(admin).json(&body).send().await.unwrap();
        assert_eq!(created.status(), 201);
        let agent = serde_json::json!({"name": "logs"});
        let registered =
            client.post(format!("{address}/api/v1/agents")).bearer_auth(token).json(&agent).send().await.unwrap();
        assert_eq!(registered.status(), 201);
        client.get(format!("{address}/metrics")).send().await.unwrap().text().await.unwrap()
    });
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    for line in lines.map_while(Result::ok) {
        log.push_str(&line);
        log.push('\n');
    }
    let _ = server.wait();
    for value in [admin, token, passphrase, secret] {
        let leaked: Vec<&str> = log.lines().filter(|l| l.contains(value)).collect();
        assert!(leaked.is_empty(), "{value} in the log: {leaked:?}");
        assert!(!metrics.contains(value), "{value} in the metrics");
    }
    assert!(log.contains("request completed"), "the log was read");
}

/// One HTTP/2 frame: type, flags, stream id, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[actix_web::test]
async fn http2_header_blocks_and_streams_are_bounded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (app, ca) = tls_app().await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mut tls = h2_tls(&app, &ca).await;
        tasks.push(tokio::spawn(async move {
            tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
            tls.write_all(&frame(0x4, 0, 0, &[])).await.unwrap();
            // The server's SETTINGS come first: read the limits it announces.
            let mut head = [0u8; 9];
            tls.read_exact(&mut head).await.unwrap();
            assert_eq!(head[3], 0x4, "a SETTINGS frame first");
            let mut payload = vec![0u8; u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize];
            tls.read_exact(&mut payload).await.unwrap();
            let settings: Vec<(u16, u32)> = payload
                .chunks(6)
                .map(|c| (u16::from_be_bytes([c[0], c[1]]), u32::from_be_bytes([c[2], c[3], c[4], c[5]])))
                .collect();
            // An unfinished header block of up to 16 MiB: HEADERS, then CONTINUATION frames.
            let (reader, mut writer) = tokio::io::split(tls);
            let sender = tokio::spawn(async move {
                let mut sent = 0usize;
                let chunk = vec![0x40u8; 16 * 1024];
                if writer.write_all(&frame(0x1, 0, 1, &chunk)).await.is_err() {
                    return sent;
                }
                while sent < 16 * 1024 * 1024 {
                    if writer.write_all(&frame(0x9, 0, 1, &chunk)).await.is_err() {
                        break;
                    }
                    sent += chunk.len();
                }
                sent
            });
            let mut reader = reader;
            let mut rest = Vec::new();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(20), reader.read_to_end(&mut rest)).await;
            let sent = tokio::time::timeout(std::time::Duration::from_secs(20), sender).await.unwrap().unwrap();
            (settings, sent)
        }));
    }
    for task in tasks {
        let (settings, sent) = task.await.unwrap();
        assert!(settings.contains(&(0x6, 64 * 1024)), "MAX_HEADER_LIST_SIZE announced: {settings:?}");
        assert!(settings.contains(&(0x3, 128)), "MAX_CONCURRENT_STREAMS announced: {settings:?}");
        assert!(sent < 4 * 1024 * 1024, "the server cut the block off early, not after {sent} bytes");
    }
    let response = app.client.get(app.url("/health")).send().await;
    assert!(response.is_err() || response.unwrap().status() == 200);
}

#[actix_web::test]
async fn one_address_cannot_hold_more_connections_than_its_share() {
    let app = TestApp::spawn_with(&["--max-connections-per-peer", "50"]).await;
    let address: std::net::SocketAddr = app.address.trim_start_matches("http://").parse().unwrap();
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..100 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut stream = socket.connect(address).await.unwrap();
        let mut buf = [0u8; 1];
        // A refused connection is closed at once; a held one stays open and silent.
        match tokio::time::timeout(
            std::time::Duration::from_millis(200),
            tokio::io::AsyncReadExt::read(&mut stream, &mut buf),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => refused += 1,
            _ => held.push(stream),
        }
    }
    assert_eq!((held.len(), refused), (50, 50), "50 held, the rest closed at once");
    let started = std::time::Instant::now();
    assert_eq!(app.get("/health").await.status(), 200, "another address is served");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    let metrics = app.metrics_text().await;
    let counted = crate::helpers::metric_value(&metrics, "certctl_connections_refused_total{reason=\"peer_limit\"}");
    assert!(counted.is_some_and(|n| n >= 50.0), "counted: {counted:?}");
    drop(held);
}

#[actix_web::test]
async fn role_checks_see_the_path_the_router_sees() {
    use crate::helpers::{READ_KEY, USER_KEY};
    use reqwest::Method;
    let app = TestApp::spawn().await;
    // Percent-encoded letters, doubled and trailing slashes: the router may decode or fold them,
    // so the role check must refuse whatever would reach an admin-only handler.
    for path in [
        "/api/v1/%74argets/tgt-nginx-prod",
        "/api/v1/t%61rgets/tgt-nginx-prod",
        "/api/v1//targets/tgt-nginx-prod",
        "/api/v1/targets//tgt-nginx-prod",
        "/api/v1/targets/tgt-nginx-prod/",
        "/api/v1/%61dmin/config",
    ] {
        let method = if path.contains("admin") { Method::GET } else { Method::PUT };
        let response = app
            .client
            .request(method, app.url(path))
            .bearer_auth(USER_KEY)
            .json(&serde_json::json!({"name": "hijacked"}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!(matches!(status, 403 | 404 | 400), "{path}: a writer got {status}");
    }
    let response = app
        .client
        .request(Method::POST, app.url("/api/v1/t%65ams"))
        .bearer_auth(READ_KEY)
        .json(&serde_json::json!({"name": "by a reader"}))
        .send()
        .await
        .unwrap();
    assert!(matches!(response.status().as_u16(), 403 | 404), "a reader wrote: {}", response.status());
    let target: serde_json::Value = app.get("/api/v1/targets/tgt-nginx-prod").await.json().await.unwrap();
    assert_ne!(target["name"], "hijacked");
}
