//! Fake DigiCert CertCentral Services API v2 (research/vendors.md §1): `X-DC-DEVKEY` auth, orders
//! submitted with a CSR and issued at a later status poll, the order list the connector searches
//! after a crash, the `pem_all` download (CA first, then the leaf, on purpose), and revocation.
//! Errors are `{"errors":[{"code","message"}]}`.

use serde::Deserialize;
use serde_json::{json, Value};

use super::server::{Call, Reply};
use super::signing::read_csr;
use super::state::{NewOrder, Order, OrderStatus, Poll, PollFault, State};
use super::Shared;

/// The API key the fake accepts.
pub(super) const DEVKEY: &str = "test-devkey";
/// The path of the connector's `base_url`.
pub(super) const BASE_PATH: &str = "/services/v2";

pub(super) fn handle(shared: &Shared, call: &Call) -> Reply {
    let mut state = shared.state();
    if state.behaviour.refuse_credentials || call.header("x-dc-devkey") != Some(DEVKEY) {
        return error(401, "access_denied", "Invalid API key or insufficient permissions");
    }
    let Some(segments) = call.segments(BASE_PATH) else {
        return not_found();
    };
    match (call.method.as_str(), segments.as_slice()) {
        ("GET", ["user", "me"]) => {
            Reply::json(200, &json!({"id": 1, "username": "certctl", "email": "ops@example.test"}))
        }
        ("POST", ["order", "certificate", _product]) => submit(&mut state, call),
        ("GET", ["order", "certificate"]) => list(&state, call),
        ("GET", ["order", "certificate", id]) => match state.poll(id, &shared.authority) {
            Poll::Fault(PollFault::Drop) => Reply::Drop,
            Poll::Fault(PollFault::ServerError) => error(500, "internal_error", "An internal error occurred"),
            Poll::Fault(PollFault::RateLimited { retry_after_secs }) => Reply::rate_limited(
                retry_after_secs,
                &errors("request_limit_exceeded", "Too many requests. Please retry later."),
            ),
            Poll::Unknown => not_found(),
            Poll::Failed(why) => error(500, "internal_error", &why),
            Poll::Order(order) => Reply::json(200, &order_details(order)),
        },
        ("GET", ["certificate", id, "download", "format", "pem_all"]) => {
            let leaf = certificate_index(&state, id).and_then(|i| state.orders[i].leaf());
            match leaf {
                Some(leaf) => {
                    Reply::body(200, "application/x-pem-file", format!("{}{}", shared.authority.ca_pem(), leaf.pem))
                }
                None => not_found(),
            }
        }
        ("PUT", ["certificate", id, "revoke"]) => revoke(&mut state, call, id),
        _ => not_found(),
    }
}

#[derive(Deserialize)]
struct OrderRequest {
    certificate: CertificateRequest,
    order_validity: Option<Validity>,
    #[serde(default)]
    comments: String,
}

#[derive(Deserialize)]
struct CertificateRequest {
    common_name: String,
    #[serde(default)]
    dns_names: Vec<String>,
    csr: String,
}

#[derive(Deserialize)]
struct Validity {
    years: Option<u64>,
    days: Option<u64>,
}

/// `POST order/certificate/{product}`: the order is pending until a status poll issues it.
fn submit(state: &mut State, call: &Call) -> Reply {
    let request: OrderRequest = match call.json() {
        Ok(request) => request,
        Err(why) => return error(400, "invalid_request", &why),
    };
    if let Err(why) = read_csr(&request.certificate.csr) {
        return error(400, "invalid_csr", &why);
    }
    let days = match request.order_validity {
        Some(Validity { days: Some(days), .. }) => days,
        Some(Validity { years: Some(years), .. }) => years * 365,
        _ => 365,
    };
    state.submissions += 1;
    let order = state.add_order(NewOrder {
        common_name: request.certificate.common_name,
        names: request.certificate.dns_names,
        subject: None,
        csr_pem: request.certificate.csr,
        comments: request.comments,
        validity_secs: days * 86_400,
        status: OrderStatus::Pending,
    });
    Reply::json(201, &json!({"id": order.id, "requests": [{"id": order.request_id, "status": "pending"}]}))
}

/// `GET order/certificate?filters[common_name]=…`, newest first; other filters are ignored.
fn list(state: &State, call: &Call) -> Reply {
    let common_name = call.query("filters[common_name]");
    let limit = call.query("limit").and_then(|l| l.parse().ok()).unwrap_or(1000);
    let matching: Vec<&Order> =
        state.orders.iter().rev().filter(|o| common_name.is_none_or(|cn| o.common_name == cn)).collect();
    let orders: Vec<Value> = matching
        .iter()
        .take(limit)
        .map(|o| {
            json!({
                "id": o.id,
                "status": status(o),
                "date_created": o.created,
                "certificate": {"id": o.certificate_id, "common_name": o.common_name},
            })
        })
        .collect();
    Reply::json(200, &json!({"orders": orders, "page": {"total": matching.len(), "limit": limit, "offset": 0}}))
}

#[derive(Deserialize)]
struct RevokeRequest {
    #[serde(default)]
    revocation_reason: String,
}

/// `PUT certificate/{id or serial}/revoke`: 204 for an issued certificate.
fn revoke(state: &mut State, call: &Call, id: &str) -> Reply {
    let request: RevokeRequest = match call.json() {
        Ok(request) => request,
        Err(why) => return error(400, "invalid_request", &why),
    };
    let Some(index) = certificate_index(state, id) else {
        return not_found();
    };
    if state.orders[index].leaf().is_none() {
        return error(400, "invalid_status", "Only issued certificates can be revoked");
    }
    state.revoke(index, id, &request.revocation_reason);
    Reply::empty(204)
}

/// The order of the certificate whose id (or serial number, as the newer docs allow) is `id`.
fn certificate_index(state: &State, id: &str) -> Option<usize> {
    state.orders.iter().position(|o| {
        o.certificate_id.to_string() == id || o.leaf().is_some_and(|leaf| leaf.serial_hex().eq_ignore_ascii_case(id))
    })
}

fn order_details(order: &Order) -> Value {
    let mut certificate = json!({
        "id": order.certificate_id,
        "common_name": order.common_name,
        "dns_names": order.names,
        "csr": order.csr_pem,
    });
    if let Some(leaf) = order.leaf() {
        certificate["serial_number"] = json!(leaf.serial_hex());
    }
    json!({
        "id": order.id,
        "status": status(order),
        "certificate": certificate,
        "comments": order.comments,
        "date_created": order.created,
    })
}

fn status(order: &Order) -> &'static str {
    match order.status {
        OrderStatus::Pending => "pending",
        OrderStatus::Issued(_) => "issued",
        OrderStatus::Rejected => "rejected",
        OrderStatus::Revoked(_) => "revoked",
    }
}

fn errors(code: &str, message: &str) -> Value {
    json!({"errors": [{"code": code, "message": message}]})
}

fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(status, &errors(code, message))
}

fn not_found() -> Reply {
    error(404, "not_found", "The requested resource was not found")
}
