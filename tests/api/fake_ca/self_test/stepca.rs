//! The fake step-ca: its provisioner key encrypted as `step` writes it (decrypted here as a client
//! does, RFC 7518 §4.8, and its `kid` the RFC 7638 thumbprint), the unauthenticated endpoints, a
//! CSR signed for a good token and refused for a replayed, forged or misdirected one or other
//! names, passive revocation by a revoke token; then the faults and refusals taken on sign. Also
//! the client side of the tokens: ES256 JWS signing, `step`'s claims, a forger's key.

use std::num::NonZeroU32;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::key_wrap::{AesKek, KeyWrap, AES_128};
use aws_lc_rs::pbkdf2::{self, PBKDF2_HMAC_SHA256};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use certctl_actors::crypto::remote_leaf::check_issued_chain;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::super::{Behaviour, FakeCa, Vendor, STEP_CA_PASSWORD, STEP_CA_PROVISIONER};
use super::{client, csr_for, json_of};

/// Decodes base64url (a JWK member or a JOSE part).
fn b64d(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

/// Decrypts a provisioner key as a step-ca client does (RFC 7518 §4.8), taking `enc` and `p2c`
/// from the header: the protected header and the private JWK, or `None` for a wrong password.
fn decrypt_jwe(jwe: &str, password: &str) -> Option<(Value, Value)> {
    let [header_b64, wrapped, iv, ciphertext, tag] = jwe.split('.').collect::<Vec<_>>()[..] else {
        panic!("not a compact JWE: {jwe}");
    };
    let header: Value = serde_json::from_slice(&b64d(header_b64)).unwrap();
    let alg = header["alg"].as_str().unwrap();
    assert_eq!(alg, "PBES2-HS256+A128KW");
    let salt = [alg.as_bytes(), &[0], &b64d(header["p2s"].as_str().unwrap())].concat();
    let iterations = NonZeroU32::new(u32::try_from(header["p2c"].as_u64().unwrap()).unwrap()).unwrap();
    let mut kek = [0u8; 16];
    pbkdf2::derive(PBKDF2_HMAC_SHA256, iterations, &salt, password.as_bytes(), &mut kek);
    let (enc, cek_len) = match header["enc"].as_str().unwrap() {
        "A128GCM" => (&AES_128_GCM, 16),
        "A256GCM" => (&AES_256_GCM, 32),
        other => panic!("enc {other}"),
    };
    let mut cek = vec![0u8; cek_len];
    AesKek::new(&AES_128, &kek).unwrap().unwrap(&b64d(wrapped), &mut cek).ok()?;
    let key = LessSafeKey::new(UnboundKey::new(enc, &cek).unwrap());
    let mut sealed = [b64d(ciphertext), b64d(tag)].concat();
    let nonce = Nonce::try_assume_unique_for_key(&b64d(iv)).unwrap();
    let plain = key.open_in_place(nonce, Aad::from(header_b64.as_bytes()), &mut sealed).ok()?;
    Some((header, serde_json::from_slice(plain).unwrap()))
}

/// A compact ES256 JWS of `claims` by the private JWK `jwk`, with its `kid`.
fn sign_token(jwk: &Value, claims: &Value) -> String {
    let member = |name: &str| b64d(jwk[name].as_str().unwrap());
    let point = [&[4u8][..], &member("x"), &member("y")].concat();
    let key =
        EcdsaKeyPair::from_private_key_and_public_key(&ECDSA_P256_SHA256_FIXED_SIGNING, &member("d"), &point).unwrap();
    let header = json!({"alg": "ES256", "kid": jwk["kid"], "typ": "JWT"});
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

/// The claims `step` puts in a token for `sub`, for `aud`, with `sans`.
fn token_claims(sub: &str, aud: &str, sans: &[&str]) -> Value {
    let now = chrono::Utc::now().timestamp();
    let jti: String = rand::random::<[u8; 32]>().iter().map(|b| format!("{b:02x}")).collect();
    json!({"iss": STEP_CA_PROVISIONER, "sub": sub, "aud": aud, "jti": jti, "nbf": now, "iat": now, "exp": now + 300,
           "sans": sans})
}

/// A JWK of a fresh key that claims to be `jwk` (same `kid`): a forger's.
fn other_key_as(jwk: &Value) -> Value {
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let point = key.public_key().as_ref();
    let d = key.private_key().as_be_bytes().unwrap();
    json!({"kid": jwk["kid"], "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
           "d": URL_SAFE_NO_PAD.encode(d.as_ref())})
}

#[actix_web::test]
async fn fake_step_ca_keeps_its_key_encrypted_and_signs_only_for_good_tokens() {
    let ca = FakeCa::start(Vendor::StepCa, Behaviour::default()).await;
    let config = ca.issuer_config();
    assert_eq!(
        (config["ca_url"].as_str(), config["provisioner_name"].as_str()),
        (Some(ca.base_url.as_str()), Some(STEP_CA_PROVISIONER))
    );
    assert_eq!(config["root_cert_path"].as_str(), ca.tls_ca_file.to_str());
    let jwe = std::fs::read_to_string(config["provisioner_key_path"].as_str().unwrap()).unwrap();
    let (header, jwk) = decrypt_jwe(&jwe, config["provisioner_password"].as_str().unwrap()).unwrap();
    assert_eq!(
        (header["cty"].as_str(), header["enc"].as_str(), header["p2c"].as_u64()),
        (Some("jwk+json"), Some("A256GCM"), Some(1000))
    );
    assert_eq!(jwk, serde_json::from_str::<Value>(&ca.provisioner_jwk()).unwrap());
    assert!(decrypt_jwe(&jwe, "wrong-password").is_none(), "the key wrap's check fails on a wrong password");
    let members = json!({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]}).to_string();
    assert_eq!(jwk["kid"].as_str().unwrap(), URL_SAFE_NO_PAD.encode(digest(&SHA256, members.as_bytes())), "RFC 7638");
    assert_eq!((jwk["alg"].as_str(), jwk["use"].as_str()), (Some("ES256"), Some("sig")));

    let http = client(&ca, false);
    let get = |path: &str| http.get(format!("{}{path}", ca.base_url)).send();
    assert_eq!(json_of(get("/1.0/health").await.unwrap(), 200).await["status"], "ok");
    assert_eq!(json_of(get("/roots").await.unwrap(), 201).await["crts"][0].as_str(), Some(ca.root_pem().as_str()));
    let root_der = x509_parser::pem::parse_x509_pem(ca.root_pem().as_bytes()).unwrap().1.contents;
    let fingerprint: String = digest(&SHA256, &root_der).as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        json_of(get(&format!("/root/{fingerprint}")).await.unwrap(), 200).await["ca"].as_str(),
        Some(ca.root_pem().as_str())
    );
    assert_eq!(get("/root/00").await.unwrap().status(), StatusCode::NOT_FOUND);
    let listed = json_of(get("/provisioners").await.unwrap(), 200).await;
    let provisioner = &listed["provisioners"][0];
    assert_eq!((provisioner["type"].as_str(), provisioner["encryptedKey"].as_str()), (Some("JWK"), Some(jwe.as_str())));
    assert!(provisioner["key"]["d"].is_null() && provisioner["key"]["kid"] == jwk["kid"]);
    let kid = jwk["kid"].as_str().unwrap();
    assert_eq!(json_of(get(&format!("/provisioners/{kid}/encrypted-key")).await.unwrap(), 200).await["key"], jwe);

    let port = ca.base_url.rsplit(':').next().unwrap();
    let sign_aud = format!("https://127.0.0.1:{port}/1.0/sign");
    let csr = csr_for("k.example.test");
    let sign = |ott: &str| {
        let body = json!({"csr": csr, "ott": ott, "notAfter": "2h"});
        http.post(format!("{}/1.0/sign", ca.base_url)).json(&body).send()
    };
    let token = sign_token(&jwk, &token_claims("k.example.test", &sign_aud, &["k.example.test", "192.0.2.8"]));
    let signed = sign(&token).await.unwrap();
    assert_eq!(signed.headers()["content-type"], "application/json");
    let signed = json_of(signed, 201).await;
    assert_eq!(signed["ca"].as_str(), Some(ca.root_pem().as_str()));
    assert_eq!(signed["certChain"][0], signed["crt"]);
    let leaf_pem = signed["crt"].as_str().unwrap();
    let leaf = check_issued_chain(&format!("{leaf_pem}{}", signed["certChain"][1].as_str().unwrap()), &csr).unwrap();
    assert!((leaf.not_after - leaf.not_before).num_seconds() <= 2 * 3600 + 60);
    let (_, pem) = x509_parser::pem::parse_x509_pem(leaf_pem.as_bytes()).unwrap();
    let names = pem.parse_x509().unwrap().subject_alternative_name().unwrap().unwrap().value.general_names.len();
    assert_eq!(names, 2, "the token's sans, an IP among them");
    assert_eq!(ca.accepted_tokens()[0]["sub"], "k.example.test");

    let refused = |why: &'static str| {
        let errors = ca.token_errors();
        assert!(errors.last().is_some_and(|last| last.contains(why)), "{why} in {errors:?}");
    };
    let replayed = json_of(sign(&token).await.unwrap(), 401).await;
    assert!(replayed["message"].as_str().unwrap().starts_with("The request lacked necessary authorization"));
    refused("already used");
    let forged = sign_token(&other_key_as(&jwk), &token_claims("k.example.test", &sign_aud, &["k.example.test"]));
    assert_eq!(sign(&forged).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    refused("signature");
    let revoke_aud = format!("https://localhost:{port}/revoke");
    let misdirected = sign_token(&jwk, &token_claims("k.example.test", &revoke_aud, &["k.example.test"]));
    assert_eq!(sign(&misdirected).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    refused("invalid audience");
    let other_names =
        sign_token(&jwk, &token_claims("k.example.test", "https://localhost/sign", &["other.example.test"]));
    let mismatch = json_of(sign(&other_names).await.unwrap(), 403).await;
    assert!(mismatch["message"].as_str().unwrap().contains("valid DNS names"), "{mismatch}");
    assert_eq!((ca.submissions(), ca.status_polls()), (2, 0));

    let decimal = u128::from_str_radix(&leaf.serial_hex, 16).unwrap().to_string();
    let revoke = |serial: &str, sub: &str, aud: &str, passive: bool| {
        let ott = sign_token(&jwk, &token_claims(sub, aud, &[]));
        let body =
            json!({"serial": serial, "ott": ott, "reasonCode": 1, "reason": "key compromise", "passive": passive});
        http.post(format!("{}/revoke", ca.base_url)).json(&body).send()
    };
    assert_eq!(json_of(revoke(&decimal, &decimal, &revoke_aud, false).await.unwrap(), 501).await["status"], 501);
    assert_eq!(revoke(&decimal, &decimal, &sign_aud, true).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(revoke(&decimal, "12", &revoke_aud, true).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(revoke("12", "12", &revoke_aud, true).await.unwrap().status(), StatusCode::NOT_FOUND);
    let hex = format!("0x{}", leaf.serial_hex);
    assert_eq!(json_of(revoke(&hex, &decimal, &revoke_aud, true).await.unwrap(), 200).await["status"], "ok");
    assert_eq!(ca.revocations(), vec![(decimal.clone(), "1".to_string())]);
    let again = json_of(revoke(&decimal, &decimal, &revoke_aud, true).await.unwrap(), 400).await;
    assert!(again["message"].as_str().unwrap().contains("already revoked"), "{again}");
    assert!(ca.requests().contains(&("POST".into(), "/revoke".into(), String::new())));
}

#[actix_web::test]
async fn fake_step_ca_takes_its_faults_and_refusals_on_sign() {
    let faults = Behaviour { dropped_connections: 1, server_errors: 1, ..Behaviour::default() };
    let ca = FakeCa::start(Vendor::StepCa, faults).await;
    let jwk: Value = serde_json::from_str(&ca.provisioner_jwk()).unwrap();
    let http = client(&ca, false);
    let csr = csr_for("l.example.test");
    let sign = || {
        let ott = sign_token(&jwk, &token_claims("l.example.test", "https://localhost/1.0/sign", &[]));
        http.post(format!("{}/sign", ca.base_url)).json(&json!({"csr": csr, "ott": ott})).send()
    };
    assert!(!sign().await.unwrap_err().is_connect(), "the connection closed without an answer");
    assert_eq!(json_of(sign().await.unwrap(), 500).await["status"], 500);
    let signed = json_of(sign().await.unwrap(), 201).await;
    let leaf = check_issued_chain(&format!("{}{}", signed["crt"].as_str().unwrap(), ca.root_pem()), &csr).unwrap();
    assert!((leaf.not_after - leaf.not_before).num_seconds() <= 24 * 3600 + 60, "24 hours without notAfter");
    assert_eq!((ca.submissions(), ca.status_polls(), ca.accepted_tokens().len()), (3, 0, 3));

    ca.set_behaviour(Behaviour { reject: true, ..Behaviour::default() });
    let rejected = json_of(sign().await.unwrap(), 403).await;
    assert!(rejected["message"].as_str().unwrap().contains("does not contain the valid DNS names"), "{rejected}");
    ca.set_behaviour(Behaviour { refuse_credentials: true, ..Behaviour::default() });
    assert_eq!(sign().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(ca.submissions(), 4, "refused credentials are not a submission");
    let password = STEP_CA_PASSWORD;
    assert!(decrypt_jwe(&std::fs::read_to_string(ca.provisioner_key_path()).unwrap(), password).is_some());
}
