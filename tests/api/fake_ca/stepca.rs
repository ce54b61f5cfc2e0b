//! Fake step-ca (smallstep) with one JWK provisioner (research/stepca.md): plain TLS, every route
//! both at `/` and under `/1.0`. The provisioner key, its encryption and the token checks are
//! [`super::stepca_jose`]'s; this file holds the endpoints. `POST /sign` signs at once,
//! authorized by a one-time token (an ES256 JWT signed with that key, §6) whose `sans` name the
//! leaf; `POST /revoke` takes a revoke token for the serial in decimal, passive revocation only.
//! Also the unauthenticated health, roots and provisioner endpoints. Errors are
//! `{"status":N,"message":"…"}` plus a newline; every token failure is 401 with step-ca's generic
//! message, and the fake keeps the real reason for the test ([`super::FakeCa::token_errors`]).

use std::net::IpAddr;

use aws_lc_rs::digest::{digest, SHA256};
use serde::Deserialize;
use serde_json::{json, Value};

use super::server::{Call, Reply};
use super::signing::{decimal, random_serial, read_csr, Subject};
use super::state::{NewOrder, OrderStatus, PollFault, State};
use super::stepca_jose::Provisioner;
use super::{Shared, STEP_CA_PROVISIONER};

/// The encrypted provisioner key's file, in the fake's directory.
pub(super) const KEY_FILE: &str = "provisioner-key.jwe";
/// A leaf's lifetime when the request names none, and the longest the fake grants.
const DEFAULT_LIFETIME_SECS: u64 = 24 * 3600;
const MAX_LIFETIME_SECS: u64 = 30 * 86_400;
const UNAUTHORIZED: &str =
    "The request lacked necessary authorization to be completed. Please see the certificate authority logs for more info.";
const NOT_FOUND: &str =
    "The requested resource could not be found. Please see the certificate authority logs for more info.";
const NOT_IMPLEMENTED: &str =
    "The requested method is not implemented by the certificate authority. Please see the certificate authority logs for more info.";
const INTERNAL: &str =
    "The certificate authority encountered an Internal Server Error. Please see the certificate authority logs for more info.";
/// What the extended key usages of step-ca's default leaf template are: serverAuth, clientAuth.
const LEAF_USAGES: [&str; 2] = ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"];

pub(super) fn handle(shared: &Shared, call: &Call) -> Reply {
    let Some(provisioner) = &shared.provisioner else {
        return error(500, INTERNAL);
    };
    // Every route is mounted at `/` and again under `/1.0`.
    let segments = call.segments("/1.0").or_else(|| call.segments("")).unwrap_or_default();
    let ca_pem = shared.authority.ca_pem();
    match (call.method.as_str(), segments.as_slice()) {
        ("GET", ["health"]) => answer(200, &json!({"status": "ok"})),
        ("GET", ["version"]) => answer(200, &json!({"version": "0.28.4"})),
        ("GET", ["roots"]) => answer(201, &json!({"crts": [ca_pem]})),
        ("GET", ["roots.pem"]) => Reply::body(200, "application/x-pem-file", ca_pem.to_string()),
        ("GET", ["root", sha]) => {
            let fingerprint = hex(digest(&SHA256, shared.authority.ca_der()).as_ref());
            if sha.replace('-', "").eq_ignore_ascii_case(&fingerprint) {
                answer(200, &json!({"ca": ca_pem}))
            } else {
                error(404, NOT_FOUND)
            }
        }
        ("GET", ["provisioners"]) => {
            if call.query("limit").is_some_and(|limit| limit.parse::<u32>().is_err()) {
                return error(400, "The request could not be completed: limit is not an integer.");
            }
            let listed = json!({"type": "JWK", "name": STEP_CA_PROVISIONER, "key": provisioner.public_jwk,
                                "encryptedKey": provisioner.encrypted_key, "claims": {}});
            answer(200, &json!({"provisioners": [listed], "nextCursor": ""}))
        }
        ("GET", ["provisioners", kid, "encrypted-key"]) if *kid == provisioner.kid => {
            answer(200, &json!({"key": provisioner.encrypted_key}))
        }
        ("GET", ["provisioners", _, "encrypted-key"]) => error(404, NOT_FOUND),
        ("POST", ["sign"]) => sign(&mut shared.state(), shared, provisioner, call),
        ("POST", ["revoke"]) => revoke(&mut shared.state(), provisioner, call),
        _ => Reply::body(404, "text/plain; charset=utf-8", "404 page not found\n".into()),
    }
}

/// The claims of `token` for `paths`, once: an accepted token's `jti` (or, without one, its
/// hash) is spent. A refused token's reason is for [`unauthorized`].
fn authorize(state: &mut State, provisioner: &Provisioner, token: &str, paths: &[&str]) -> Result<Value, String> {
    let claims = provisioner.verify(token, paths)?;
    let id = match claims["jti"].as_str().filter(|jti| !jti.is_empty()) {
        Some(jti) => jti.to_string(),
        None => hex(digest(&SHA256, token.as_bytes()).as_ref()),
    };
    if !state.used_token_ids.insert(id) {
        return Err(format!("token already used (jti {})", claims["jti"]));
    }
    state.accepted_tokens.push(claims.clone());
    Ok(claims)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignRequest {
    #[serde(default)]
    csr: String,
    #[serde(default)]
    ott: String,
    #[serde(default)]
    not_before: Option<String>,
    #[serde(default)]
    not_after: Option<String>,
}

/// `POST sign`: the body is checked, then the token, then (counted as a submission) the
/// behaviour's faults and refusal, then the CSR's names against the token's; 201 with the chain.
fn sign(state: &mut State, shared: &Shared, provisioner: &Provisioner, call: &Call) -> Reply {
    if state.behaviour.refuse_credentials {
        return unauthorized(state, "refused: the behaviour refuses credentials".into());
    }
    let request: SignRequest = match call.json() {
        Ok(request) => request,
        Err(why) => return bad_request(&format!("error decoding json: {why}")),
    };
    let lifetime =
        match (time_or_duration(request.not_before.as_deref()), time_or_duration(request.not_after.as_deref())) {
            (Ok(_), Ok(None)) => DEFAULT_LIFETIME_SECS,
            (Ok(_), Ok(Some(secs))) if secs > 0 => u64::try_from(secs).unwrap_or(0).min(MAX_LIFETIME_SECS),
            (Ok(_), Ok(Some(_))) => return bad_request("notAfter is not in the future"),
            (Err(why), _) | (_, Err(why)) => return bad_request(&why),
        };
    if request.csr.is_empty() {
        return bad_request("missing csr");
    }
    let Ok(csr) = read_csr(&request.csr) else {
        return bad_request("invalid csr");
    };
    if request.ott.is_empty() {
        return bad_request("missing ott");
    }
    let claims = match authorize(state, provisioner, &request.ott, &["/1.0/sign", "/sign"]) {
        Ok(claims) => claims,
        Err(why) => return unauthorized(state, why),
    };
    state.submissions += 1;
    match state.take_fault() {
        Some(PollFault::Drop) => return Reply::Drop,
        Some(PollFault::ServerError) => return error(500, INTERNAL),
        Some(PollFault::RateLimited { retry_after_secs }) => {
            return Reply::rate_limited(retry_after_secs, &json!({"status": 429, "message": "Too Many Requests"}));
        }
        None => {}
    }
    let csr_names: Vec<&str> = csr.names.iter().map(String::as_str).collect();
    if state.behaviour.reject {
        return forbidden(&format!(
            "certificate request does not contain the valid DNS names - got {}, want []",
            go_list(&csr_names)
        ));
    }
    let subject = token_subject(&claims);
    if let Err(why) = check_names(&csr.common_name, &csr_names, &subject) {
        return forbidden(&why);
    }
    let leaf = match shared.authority.sign(&request.csr, lifetime, &random_serial(), Some(&subject)) {
        Ok(leaf) => leaf,
        Err(why) => return error(500, &why),
    };
    let ca_pem = shared.authority.ca_pem().to_string();
    let body = json!({"crt": leaf.pem, "ca": ca_pem, "certChain": [leaf.pem, ca_pem], "tlsOptions": null});
    let mut names = subject.dns_names.clone();
    names.extend(subject.ip_addresses.iter().map(IpAddr::to_string));
    state.add_order(NewOrder {
        common_name: subject.common_name.clone(),
        names,
        subject: Some(subject),
        csr_pem: request.csr,
        comments: String::new(),
        validity_secs: lifetime,
        status: OrderStatus::Issued(leaf),
    });
    answer(201, &body)
}

/// What the leaf says, from the token: CN `sub`, the SANs `sans` (or `[sub]`), split into DNS
/// names and IPs, with step-ca's serverAuth and clientAuth.
fn token_subject(claims: &Value) -> Subject {
    let sub = claims["sub"].as_str().unwrap_or_default().to_string();
    let sans: Vec<String> = match claims["sans"].as_array() {
        Some(sans) if !sans.is_empty() => sans.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => vec![sub.clone()],
    };
    let (ips, dns): (Vec<&String>, Vec<&String>) = sans.iter().partition(|san| san.parse::<IpAddr>().is_ok());
    Subject {
        common_name: sub,
        dns_names: dns.into_iter().cloned().collect(),
        ip_addresses: ips.into_iter().filter_map(|ip| ip.parse().ok()).collect(),
        extended_key_usages: LEAF_USAGES.iter().map(|oid| oid.to_string()).collect(),
    }
}

/// The JWK provisioner's CSR checks: the CSR's CN empty, `sub` or one of the SANs; its DNS names
/// and its IPs, when it has any, exactly the token's.
fn check_names(common_name: &str, csr_names: &[&str], token: &Subject) -> Result<(), String> {
    let token_ips: Vec<String> = token.ip_addresses.iter().map(IpAddr::to_string).collect();
    let allowed_cn: Vec<&str> = std::iter::once(token.common_name.as_str())
        .chain(token.dns_names.iter().map(String::as_str))
        .chain(token_ips.iter().map(String::as_str))
        .collect();
    if !common_name.is_empty() && !allowed_cn.contains(&common_name) {
        return Err(format!(
            "certificate request does not contain the valid common name - got {common_name}, want {}",
            go_list(&allowed_cn)
        ));
    }
    let (csr_ips, csr_dns): (Vec<&str>, Vec<&str>) = csr_names.iter().partition(|name| name.parse::<IpAddr>().is_ok());
    let wanted_dns: Vec<&str> = token.dns_names.iter().map(String::as_str).collect();
    let wanted_ips: Vec<&str> = token_ips.iter().map(String::as_str).collect();
    for (kind, got, want) in [("DNS names", csr_dns, wanted_dns), ("IP addresses", csr_ips, wanted_ips)] {
        if !got.is_empty() && !same_set(&got, &want) {
            return Err(format!(
                "certificate request does not contain the valid {kind} - got {}, want {}",
                go_list(&got),
                go_list(&want)
            ));
        }
    }
    Ok(())
}

fn same_set(a: &[&str], b: &[&str]) -> bool {
    a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

/// A list as Go's `%v` prints it: `[a b]`.
fn go_list(items: &[&str]) -> String {
    format!("[{}]", items.join(" "))
}

/// `notBefore`/`notAfter`: seconds from now, from an RFC 3339 time or a Go duration; `None` for
/// absent or "".
fn time_or_duration(value: Option<&str>) -> Result<Option<i64>, String> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(Some(time.timestamp() - chrono::Utc::now().timestamp()));
    }
    go_duration_secs(value).map(Some).ok_or_else(|| format!("{value:?} is neither an RFC 3339 time nor a duration"))
}

/// A Go duration (`2160h`, `1h30m`, `-5m`, `1.5h`) in whole seconds.
fn go_duration_secs(duration: &str) -> Option<i64> {
    let (sign, mut rest) = match duration.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, duration.strip_prefix('+').unwrap_or(duration)),
    };
    if rest == "0" {
        return Some(0);
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    Some((sign * total) as i64)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RevokeRequest {
    #[serde(default)]
    serial: String,
    #[serde(default)]
    ott: String,
    #[serde(default)]
    reason_code: i64,
    #[serde(default)]
    passive: bool,
}

/// `POST revoke`: passive revocation, by a revoke token whose `sub` is the serial in decimal.
fn revoke(state: &mut State, provisioner: &Provisioner, call: &Call) -> Reply {
    let request: RevokeRequest = match call.json() {
        Ok(request) => request,
        Err(why) => return bad_request(&format!("error decoding json: {why}")),
    };
    if request.serial.is_empty() {
        return bad_request("missing serial");
    }
    let Some(serial) = decimal_serial(&request.serial) else {
        return bad_request(&format!(
            "{} is not a valid serial number - use a base 10 representation or a base 16 representation with '0x' prefix",
            request.serial
        ));
    };
    if !(0..=10).contains(&request.reason_code) {
        return bad_request("reasonCode out of bounds");
    }
    if !request.passive {
        return error(501, NOT_IMPLEMENTED);
    }
    if state.behaviour.refuse_credentials {
        return unauthorized(state, "refused: the behaviour refuses credentials".into());
    }
    if request.ott.is_empty() {
        return unauthorized(state, "no ott, and no client certificate to authorize the revocation by".into());
    }
    let claims = match authorize(state, provisioner, &request.ott, &["/1.0/revoke", "/revoke"]) {
        Ok(claims) => claims,
        Err(why) => return unauthorized(state, why),
    };
    if claims["sub"] != serial.as_str() {
        return forbidden(&format!(
            "request serial number {serial:?} and token subject {} do not match",
            claims["sub"]
        ));
    }
    let found = state.orders.iter().position(|o| o.leaf().is_some_and(|leaf| leaf.serial_decimal() == serial));
    let Some(index) = found else {
        return error(404, NOT_FOUND);
    };
    if matches!(state.orders[index].status, OrderStatus::Revoked(_)) {
        return bad_request(&format!("certificate with serial number '{serial}' is already revoked"));
    }
    state.revoke(index, &serial, &request.reason_code.to_string());
    answer(200, &json!({"status": "ok"}))
}

/// A serial in decimal, from decimal or `0x` hex (as Go's `big.Int.SetString(s, 0)` reads them).
fn decimal_serial(serial: &str) -> Option<String> {
    if let Some(hex) = serial.strip_prefix("0x").or_else(|| serial.strip_prefix("0X")) {
        if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let padded = if hex.len() % 2 == 1 { format!("0{hex}") } else { hex.to_string() };
        let bytes: Option<Vec<u8>> =
            (0..padded.len()).step_by(2).map(|at| u8::from_str_radix(&padded[at..at + 2], 16).ok()).collect();
        return Some(decimal(&bytes?));
    }
    if serial.is_empty() || !serial.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let trimmed = serial.trim_start_matches('0');
    Some(if trimmed.is_empty() { "0".into() } else { trimmed.into() })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A JSON answer as step-ca writes it (`json.Encoder`: a trailing newline).
fn answer(status: u16, body: &Value) -> Reply {
    Reply::body(status, "application/json", format!("{body}\n"))
}

fn error(status: u16, message: &str) -> Reply {
    answer(status, &json!({"status": status, "message": message}))
}

fn bad_request(why: &str) -> Reply {
    error(400, &format!("The request could not be completed: {why}."))
}

fn forbidden(why: &str) -> Reply {
    error(403, &format!("The request was forbidden by the certificate authority: {why}."))
}

/// 401 with the generic message; `why` goes where a test can read it (step-ca logs it).
fn unauthorized(state: &mut State, why: String) -> Reply {
    state.token_errors.push(why);
    error(401, UNAUTHORIZED)
}
