//! Fake HashiCorp Vault PKI secrets engine, mount `pki`, role `web` (research/vendors.md §5):
//! `X-Vault-Token` auth with a token whose TTL counts down in real time and can be renewed,
//! synchronous signing of CSRs (the chain is in the answer), revocation by serial (no reason),
//! and the unauthenticated health and CA chain endpoints. Errors are `{"errors":["…"]}`.

use serde::Deserialize;
use serde_json::{json, Value};

use super::server::{Call, Reply};
use super::signing::{random_serial, read_csr};
use super::state::{NewOrder, OrderStatus, State};
use super::Shared;

/// The token the fake accepts.
const TOKEN: &str = "test-token";
/// The token's TTL when created or renewed, in seconds.
const TOKEN_TTL: u64 = 3600;
/// The role's `max_ttl`: longer TTLs are cut to it, as Vault does.
const MAX_TTL: u64 = 7_776_000;
/// The TTL when the request names none (Vault's system default, 768h).
const DEFAULT_TTL: u64 = 768 * 3600;

pub(super) fn handle(shared: &Shared, call: &Call) -> Reply {
    let Some(segments) = call.segments("/v1") else {
        return not_found();
    };
    // These two need no token.
    match (call.method.as_str(), segments.as_slice()) {
        ("GET", ["sys", "health"]) => {
            return Reply::json(
                200,
                &json!({"initialized": true, "sealed": false, "standby": false, "version": "1.15.0"}),
            );
        }
        ("GET", ["pki", "ca_chain"]) => {
            return Reply::body(200, "application/pem-certificate-chain", shared.authority.ca_pem().to_string());
        }
        _ => {}
    }
    let mut state = shared.state();
    if state.behaviour.refuse_credentials || call.header("x-vault-token") != Some(TOKEN) {
        return error(403, "permission denied");
    }
    match (call.method.as_str(), segments.as_slice()) {
        ("GET", ["auth", "token", "lookup-self"]) => {
            let ttl = TOKEN_TTL.saturating_sub(state.token_since.elapsed().as_secs());
            Reply::json(
                200,
                &json!({"data": {"ttl": ttl, "renewable": true, "creation_ttl": TOKEN_TTL, "policies": ["pki"]}}),
            )
        }
        ("POST", ["auth", "token", "renew-self"]) => {
            // The body is optional (`{}` or `{"increment":"3600s"}`); the increment is ignored.
            if !call.body.is_empty() && call.json::<Value>().is_err() {
                return error(400, "failed to parse JSON input");
            }
            state.token_renewals += 1;
            state.token_since = std::time::Instant::now();
            let auth =
                json!({"client_token": TOKEN, "lease_duration": TOKEN_TTL, "renewable": true, "policies": ["pki"]});
            Reply::json(200, &json!({ "auth": auth }))
        }
        ("GET", ["pki", "roles", "web"]) => Reply::json(
            200,
            &json!({"data": {"allowed_domains": ["example.test"], "allow_subdomains": true, "max_ttl": MAX_TTL}}),
        ),
        ("POST", ["pki", "sign", role]) => sign(&mut state, shared, call, role),
        ("POST", ["pki", "revoke"]) => revoke(&mut state, call),
        _ => not_found(),
    }
}

#[derive(Deserialize)]
struct SignRequest {
    #[serde(default)]
    csr: String,
    #[serde(default)]
    common_name: String,
    ttl: Option<String>,
    format: Option<String>,
}

/// `POST pki/sign/web`: signs at once (or refuses, when the behaviour says so).
fn sign(state: &mut State, shared: &Shared, call: &Call, role: &str) -> Reply {
    if role != "web" {
        return error(400, &format!("unknown role: {role}"));
    }
    state.submissions += 1;
    let request: SignRequest = match call.json() {
        Ok(request) => request,
        Err(why) => return error(400, &why),
    };
    if state.behaviour.reject {
        return error(400, &format!("common name {} not allowed by this role", request.common_name));
    }
    if request.format.as_deref().is_some_and(|f| f != "pem") {
        return error(400, "the fake only answers format \"pem\"");
    }
    let ttl = match request.ttl.as_deref().map(parse_ttl) {
        None => DEFAULT_TTL,
        Some(Some(ttl)) => ttl.min(MAX_TTL),
        Some(None) => return error(400, "invalid ttl"),
    };
    let csr = match read_csr(&request.csr) {
        Ok(csr) => csr,
        Err(why) => return error(400, &format!("certificate request could not be parsed: {why}")),
    };
    let leaf = match shared.authority.sign(&request.csr, ttl, &random_serial(), None) {
        Ok(leaf) => leaf,
        Err(why) => return error(500, &why),
    };
    let ca_pem = shared.authority.ca_pem().trim_end().to_string();
    let data = json!({
        "certificate": leaf.pem.trim_end(),
        "issuing_ca": ca_pem,
        "ca_chain": [ca_pem],
        "serial_number": leaf.serial_colons(),
        "expiration": chrono::Utc::now().timestamp().saturating_add_unsigned(ttl),
    });
    let common_name = if request.common_name.is_empty() { csr.common_name } else { request.common_name };
    state.add_order(NewOrder {
        common_name,
        names: csr.names,
        subject: None,
        csr_pem: request.csr,
        comments: String::new(),
        validity_secs: ttl,
        status: OrderStatus::Issued(leaf),
    });
    Reply::json(200, &json!({"lease_id": "", "lease_duration": 0, "renewable": false, "data": data, "warnings": null}))
}

#[derive(Deserialize)]
struct RevokeRequest {
    #[serde(default)]
    serial_number: String,
}

/// `POST pki/revoke`: by serial, colon- or hyphen-separated hex.
fn revoke(state: &mut State, call: &Call) -> Reply {
    let request: RevokeRequest = match call.json() {
        Ok(request) => request,
        Err(why) => return error(400, &why),
    };
    let wanted = request.serial_number.to_ascii_lowercase().replace('-', ":");
    let found = state.orders.iter().position(|o| o.leaf().is_some_and(|leaf| leaf.serial_colons() == wanted));
    let Some(index) = found else {
        return error(400, &format!("certificate with serial {} not found", request.serial_number));
    };
    state.revoke(index, &request.serial_number, "");
    Reply::json(200, &json!({"data": {"revocation_time": chrono::Utc::now().timestamp()}}))
}

/// A Vault duration: seconds, or a number with `s`, `m`, `h` or `d`.
fn parse_ttl(ttl: &str) -> Option<u64> {
    let ttl = ttl.trim();
    let (number, unit) = match ttl.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => ttl.split_at(at),
        None => (ttl, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(scale)
}

fn error(status: u16, message: &str) -> Reply {
    Reply::json(status, &json!({"errors": [message]}))
}

fn not_found() -> Reply {
    Reply::json(404, &json!({"errors": []}))
}
