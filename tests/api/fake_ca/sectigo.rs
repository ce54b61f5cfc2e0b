//! Fake Sectigo Certificate Manager REST API (research/vendors.md §2): `login`/`password`/
//! `customerUri` header auth, enrollment with a CSR issued at a later status poll (the first
//! "not yet" answer is `Requested`, later ones `Applied`, which some clients wrongly take for
//! issued), `collect` (leaf then CA; -183 until issued), the search by common name, and revocation
//! with the Mozilla reason codes. Errors are `{"code":<negative int>,"description":"…"}`.

use serde::Deserialize;
use serde_json::{json, Value};

use super::server::{Call, Reply};
use super::signing::read_csr;
use super::state::{NewOrder, Order, OrderStatus, Poll, PollFault, State};
use super::Shared;

/// The path of the connector's `base_url`.
pub(super) const BASE_PATH: &str = "/api";
/// The one certificate profile the fake offers, and its terms in days.
const CERT_TYPE: i64 = 567;
const TERMS: [u64; 2] = [365, 730];
/// The reason codes Sectigo accepts on revocation.
const REASON_CODES: [&str; 5] = ["0", "1", "3", "4", "5"];

pub(super) fn handle(shared: &Shared, call: &Call) -> Reply {
    let mut state = shared.state();
    let signed_in = call.header("login") == Some("certctl")
        && call.header("password") == Some("test-password")
        && call.header("customeruri") == Some("certctl-test");
    if state.behaviour.refuse_credentials || !signed_in {
        return error(401, -16, "Invalid login or password");
    }
    let Some(segments) = call.segments(BASE_PATH) else {
        return not_found();
    };
    match (call.method.as_str(), segments.as_slice()) {
        ("GET", ["ssl", "v1", "types"]) => {
            Reply::json(200, &json!([{"id": CERT_TYPE, "name": "OV SSL", "terms": TERMS}]))
        }
        ("POST", ["ssl", "v1", "enroll"]) => enroll(&mut state, call),
        ("GET", ["ssl", "v1"]) => list(&state, call),
        ("GET", ["ssl", "v1", "collect", id]) => collect(&state, shared.authority.ca_pem(), call, id),
        ("POST", ["ssl", "v1", "revoke", id]) => revoke(&mut state, call, id),
        ("GET", ["ssl", "v1", id]) => match state.poll(id, &shared.authority) {
            Poll::Fault(PollFault::Drop) => Reply::Drop,
            Poll::Fault(PollFault::ServerError) => error(500, -1, "Internal server error"),
            Poll::Fault(PollFault::RateLimited { retry_after_secs }) => {
                Reply::rate_limited(retry_after_secs, &json!({"code": -1, "description": "Too many requests"}))
            }
            Poll::Unknown => unknown_certificate(),
            Poll::Failed(why) => error(500, -1, &why),
            Poll::Order(order) => Reply::json(200, &details(order)),
        },
        _ => not_found(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnrollRequest {
    #[allow(dead_code, reason = "required on the wire, not used by the fake")]
    org_id: i64,
    cert_type: i64,
    term: u64,
    csr: String,
    #[serde(default)]
    subj_alt_names: String,
    #[serde(default)]
    comments: String,
}

/// `POST ssl/v1/enroll`: the certificate is `Requested` until a status poll issues it.
fn enroll(state: &mut State, call: &Call) -> Reply {
    let request: EnrollRequest = match call.json() {
        Ok(request) => request,
        Err(why) => return error(400, -1, &why),
    };
    if request.cert_type != CERT_TYPE {
        return error(400, -1, &format!("Invalid certificate type {}", request.cert_type));
    }
    if !TERMS.contains(&request.term) {
        return error(400, -1, &format!("Invalid term {}: the certificate type allows {TERMS:?}", request.term));
    }
    let csr = match read_csr(&request.csr) {
        Ok(csr) => csr,
        Err(why) => return error(400, -1, &why),
    };
    let names: Vec<String> =
        request.subj_alt_names.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string).collect();
    // Sectigo takes the common name from the CSR.
    let common_name =
        if csr.common_name.is_empty() { names.first().cloned().unwrap_or_default() } else { csr.common_name };
    state.submissions += 1;
    let order = state.add_order(NewOrder {
        common_name,
        names,
        subject: None,
        csr_pem: request.csr,
        comments: request.comments,
        validity_secs: request.term * 86_400,
        status: OrderStatus::Pending,
    });
    Reply::json(200, &json!({"sslId": order.id, "renewId": format!("renew-{}", order.id)}))
}

/// `GET ssl/v1?commonName=…`, newest first.
fn list(state: &State, call: &Call) -> Reply {
    let common_name = call.query("commonName");
    let found: Vec<Value> = state
        .orders
        .iter()
        .rev()
        .filter(|o| common_name.is_none_or(|cn| o.common_name == cn))
        .map(|o| json!({"sslId": o.id, "commonName": o.common_name}))
        .collect();
    Reply::json(200, &Value::Array(found))
}

/// `GET ssl/v1/collect/{sslId}?format=…`: `x509` (and `pem`) the leaf then the CA, `x509CO` the
/// leaf, `x509IO` the CA.
fn collect(state: &State, ca_pem: &str, call: &Call, id: &str) -> Reply {
    let Some(index) = state.order_index(id) else {
        return unknown_certificate();
    };
    let leaf = match &state.orders[index].status {
        OrderStatus::Issued(leaf) => leaf,
        OrderStatus::Pending => return error(400, -183, "Certificate is not available yet"),
        OrderStatus::Rejected => return error(400, -1, "The certificate request was declined"),
        OrderStatus::Revoked(_) => return error(400, -192, "Certificate is revoked"),
    };
    let body = match call.query("format").unwrap_or("base64") {
        "x509" | "pem" => format!("{}{ca_pem}", leaf.pem),
        "x509CO" => leaf.pem.clone(),
        "x509IO" => ca_pem.to_string(),
        other => return error(400, -1, &format!("Unsupported format {other:?}")),
    };
    Reply::body(200, "application/octet-stream", body)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RevokeRequest {
    #[serde(default)]
    reason_code: Value,
    #[serde(default)]
    reason: String,
}

/// `POST ssl/v1/revoke/{sslId}`: 204 for an issued certificate with a valid reason.
fn revoke(state: &mut State, call: &Call, id: &str) -> Reply {
    let request: RevokeRequest = match call.json() {
        Ok(request) => request,
        Err(why) => return error(400, -1, &why),
    };
    // The spec has the code as a string; a number is refused like any other wrong value.
    let Some(code) = request.reason_code.as_str().filter(|c| REASON_CODES.contains(c)) else {
        return error(400, -1, &format!("Invalid reasonCode {}: one of {REASON_CODES:?}", request.reason_code));
    };
    if request.reason.trim().is_empty() {
        return error(400, -1, "The revocation reason must not be empty");
    }
    let Some(index) = state.order_index(id) else {
        return unknown_certificate();
    };
    if state.orders[index].leaf().is_none() {
        return error(400, -1, "Only issued certificates can be revoked");
    }
    state.revoke(index, id, code);
    Reply::empty(204)
}

fn details(order: &Order) -> Value {
    let status = match order.status {
        OrderStatus::Pending if order.pending_answers <= 1 => "Requested",
        OrderStatus::Pending => "Applied",
        OrderStatus::Issued(_) => "Issued",
        OrderStatus::Rejected => "Declined",
        OrderStatus::Revoked(_) => "Revoked",
    };
    let mut details = json!({
        "sslId": order.id,
        "id": order.id,
        "commonName": order.common_name,
        "subjectAlternativeNames": order.names,
        "status": status,
        "comments": order.comments,
        "requested": order.created,
    });
    if let Some(leaf) = order.leaf() {
        details["serialNumber"] = json!(leaf.serial_hex());
    }
    details
}

fn error(status: u16, code: i64, description: &str) -> Reply {
    Reply::json(status, &json!({"code": code, "description": description}))
}

fn unknown_certificate() -> Reply {
    error(404, -101, "Certificate not found")
}

fn not_found() -> Reply {
    error(404, -1, "Not found")
}
