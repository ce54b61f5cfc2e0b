//! HTTPS with the self-signed certificate the server makes on first start, which clients can pin
//! (and which `openssl verify` accepts for itself); the ACME server's URLs name https for HTTP/1.1
//! clients too.

use std::time::Duration;

use crate::helpers::{base_args, fresh_database, settings_from, TestApp};

#[actix_web::test]
async fn https_is_served_with_a_self_signed_certificate_clients_can_pin() {
    let db = fresh_database().await;
    let mut args = base_args(&db);
    let data_dir = args[args.iter().position(|a| a == "--data-dir").unwrap() + 1].clone();
    args.extend(["--server-tls", "true", "--acme-server-enabled", "true"].map(String::from));
    let app = TestApp::start(settings_from(args), db).await;
    assert!(app.address.starts_with("https://"));

    let pem = std::fs::read(format!("{data_dir}/tls/server.crt")).expect("the certificate is kept in the data dir");
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(format!("{data_dir}/tls/server.key")).unwrap().permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600, "the private key is private");

    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let url = app.address.replace("127.0.0.1", host);
        let response =
            client.get(format!("{url}/health")).send().await.expect("TLS handshake with the pinned certificate");
        assert_eq!(response.status(), 200);
    }

    // URLs the server hands out name https whatever the HTTP version: an HTTP/1.1 request carries
    // no scheme of its own (certbot speaks HTTP/1.1).
    let profile = client
        .post(format!("{}/api/v1/profiles", app.address))
        .bearer_auth(crate::helpers::ADMIN_KEY)
        .json(&serde_json::json!({"id": "prof-tls", "name": "TLS"}))
        .send()
        .await
        .unwrap();
    assert_eq!(profile.status(), 201);
    let http1 = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .http1_only()
        .build()
        .unwrap();
    let directory: serde_json::Value = http1
        .get(format!("{}/acme/profile/prof-tls/directory", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(directory["newNonce"], format!("{}/acme/profile/prof-tls/new-nonce", app.address), "{directory}");

    // The certificate verifies as a self-signed CA-less leaf for its names with openssl too.
    let output = std::process::Command::new("openssl")
        .args(["verify", "-CAfile", &format!("{data_dir}/tls/server.crt"), "-partial_chain"])
        .arg(format!("{data_dir}/tls/server.crt"))
        .output();
    if let Ok(output) = output {
        assert!(output.status.success(), "openssl verify: {}", String::from_utf8_lossy(&output.stdout));
    }
}
