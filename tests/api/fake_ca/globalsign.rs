//! Fake GlobalSign Atlas HVCA, Certificate Management API v2 (research/vendors.md §4): mutual TLS
//! on every connection, and a bearer token from `POST /login` on every other call. A certificate
//! is requested with the CSR as its `public_key` and the names and key usages given in the body
//! (Atlas takes only the key from the CSR): 201 with no body and the serial in `Location`. Its
//! status (`GET /certificates/{serial}`) is 202 with no body until it is issued, then the leaf
//! alone; the chain comes from `/trustchain`. Also revocation by `PATCH`, the validation policy
//! (whose validity limits submissions are held to), and the issuance statistics a connector
//! searches after a crash. Errors are `application/problem+json` `{"description":"…"}`.

use std::net::IpAddr;

use hyper::header::{HeaderName, HeaderValue, LOCATION, RETRY_AFTER};
use serde::Deserialize;
use serde_json::{json, Value};

use super::server::{Call, Reply};
use super::signing::{read_csr, serial_hex, Subject};
use super::state::{NewOrder, OrderStatus, Poll, PollFault, State};
use super::Shared;

/// The path of the connector's `api_url`.
pub(super) const BASE_PATH: &str = "/v2";
/// The credentials the fake accepts at login.
pub(super) const API_KEY: &str = "test-api-key";
pub(super) const API_SECRET: &str = "test-api-secret";
/// The validation policy's shortest and longest validity (`not_after: 0` asks for the longest),
/// and how far `not_before` may be from now.
const SECONDS_MIN: i64 = 3600;
const SECONDS_MAX: i64 = 397 * 86_400;
const NOT_BEFORE_SKEW: i64 = 3600;
/// The revocation reasons Atlas accepts.
const REASONS: [&str; 6] =
    ["unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation", "privilegeWithdrawn"];

pub(super) fn handle(shared: &Shared, call: &Call) -> Reply {
    let Some(segments) = call.segments(BASE_PATH) else {
        return not_found();
    };
    let mut state = shared.state();
    if state.behaviour.refuse_credentials {
        return problem(401, "invalid credentials");
    }
    if let ("POST", ["login"]) = (call.method.as_str(), segments.as_slice()) {
        return login(&mut state, call);
    }
    let token = call.header("authorization").and_then(|value| value.strip_prefix("Bearer "));
    if !token.is_some_and(|token| state.tokens.contains(token)) {
        return problem(401, "missing, unknown or expired access token");
    }
    match (call.method.as_str(), segments.as_slice()) {
        ("POST", ["certificates"]) => submit(&mut state, shared.port, call),
        ("GET", ["certificates", serial]) => status(&mut state, shared, serial),
        ("PATCH", ["certificates", serial]) => revoke(&mut state, call, serial),
        ("GET", ["trustchain"]) => Reply::json(200, &json!([shared.authority.ca_pem()])),
        ("GET", ["validationpolicy"]) => Reply::json(200, &validation_policy()),
        ("GET", ["stats", "issued"]) => issued(&state, call),
        _ => not_found(),
    }
}

#[derive(Deserialize)]
struct LoginRequest {
    api_key: String,
    api_secret: String,
}

/// `POST login`: a new token for the right key and secret.
fn login(state: &mut State, call: &Call) -> Reply {
    let request: LoginRequest = match call.json() {
        Ok(request) => request,
        Err(why) => return problem(400, &why),
    };
    if request.api_key != API_KEY || request.api_secret != API_SECRET {
        return problem(401, "invalid credentials");
    }
    let token: String = rand::random::<[u8; 24]>().iter().map(|b| format!("{b:02x}")).collect();
    state.tokens.insert(token.clone());
    state.logins += 1;
    Reply::json(200, &json!({ "access_token": token }))
}

#[derive(Deserialize)]
struct CertificateRequest {
    validity: Validity,
    subject_dn: SubjectDn,
    #[serde(default)]
    san: San,
    #[serde(default)]
    extended_key_usages: Vec<String>,
    public_key: String,
}

#[derive(Deserialize)]
struct Validity {
    not_before: i64,
    #[serde(default)]
    not_after: i64,
}

#[derive(Deserialize)]
struct SubjectDn {
    #[serde(default)]
    common_name: String,
}

#[derive(Default, Deserialize)]
struct San {
    #[serde(default)]
    dns_names: Vec<String>,
    #[serde(default)]
    ip_addresses: Vec<String>,
}

/// `POST certificates`: 201 with the serial in `Location`; the certificate is issued at a later
/// status poll. The body is held to the validation policy (422 when it breaks it).
fn submit(state: &mut State, port: u16, call: &Call) -> Reply {
    let request: CertificateRequest = match call.json() {
        Ok(request) => request,
        Err(why) => return problem(400, &why),
    };
    if let Err(why) = read_csr(&request.public_key) {
        return problem(422, &format!("public_key: {why}"));
    }
    if request.subject_dn.common_name.is_empty() {
        return problem(422, "subject_dn.common_name is required by the validation policy");
    }
    let ip_addresses: Vec<IpAddr> = match request.san.ip_addresses.iter().map(|ip| ip.parse()).collect() {
        Ok(ips) => ips,
        Err(_) => {
            return problem(422, &format!("san.ip_addresses: {:?} are not all IP addresses", request.san.ip_addresses))
        }
    };
    let validity_secs = match validity(&request.validity) {
        Ok(secs) => secs,
        Err(why) => return problem(422, &why),
    };
    state.submissions += 1;
    if state.behaviour.reject {
        return problem(422, "request rejected by validation policy");
    }
    let mut names = request.san.dns_names.clone();
    names.extend(request.san.ip_addresses);
    let subject = Subject {
        common_name: request.subject_dn.common_name.clone(),
        dns_names: request.san.dns_names,
        ip_addresses,
        extended_key_usages: request.extended_key_usages,
    };
    let order = state.add_order(NewOrder {
        common_name: request.subject_dn.common_name,
        names,
        subject: Some(subject),
        csr_pem: request.public_key,
        comments: String::new(),
        validity_secs,
        status: OrderStatus::Pending,
    });
    let location = format!("https://127.0.0.1:{port}{BASE_PATH}/certificates/{}", serial_hex(&order.serial));
    Reply::empty(201).with_header(LOCATION, header_value(&location))
}

/// The leaf's validity in seconds from now, when `validity` keeps to the policy.
fn validity(validity: &Validity) -> Result<u64, String> {
    let now = chrono::Utc::now().timestamp();
    let Validity { not_before, not_after } = *validity;
    if (not_before - now).abs() > NOT_BEFORE_SKEW {
        return Err(format!("validity.not_before {not_before} is more than {NOT_BEFORE_SKEW} s from now ({now})"));
    }
    let not_after = if not_after == 0 { not_before + SECONDS_MAX } else { not_after };
    let seconds = not_after - not_before;
    if !(SECONDS_MIN..=SECONDS_MAX).contains(&seconds) {
        return Err(format!("validity of {seconds} s is outside the policy's {SECONDS_MIN}..={SECONDS_MAX} s"));
    }
    u64::try_from(not_after - now).map_err(|_| format!("validity.not_after {not_after} has passed"))
}

/// `GET certificates/{serial}`: the behaviour's faults, 202 while not issued, then the leaf.
fn status(state: &mut State, shared: &Shared, serial: &str) -> Reply {
    let index = state.orders.iter().position(|o| serial_hex(&o.serial).eq_ignore_ascii_case(serial));
    match state.poll_at(index, &shared.authority) {
        Poll::Fault(PollFault::Drop) => Reply::Drop,
        Poll::Fault(PollFault::ServerError) => problem(500, "internal server error"),
        Poll::Fault(PollFault::RateLimited { retry_after_secs }) => {
            problem(429, "too many requests").with_header(RETRY_AFTER, HeaderValue::from(retry_after_secs))
        }
        Poll::Unknown => problem(404, "certificate not found"),
        Poll::Failed(why) => problem(500, &why),
        Poll::Order(order) => {
            let (leaf, status) = match &order.status {
                OrderStatus::Pending => return Reply::empty(202),
                OrderStatus::Rejected => return problem(422, "request rejected by validation policy"),
                OrderStatus::Issued(leaf) => (leaf, "ISSUED"),
                OrderStatus::Revoked(leaf) => (leaf, "REVOKED"),
            };
            Reply::json(200, &json!({"certificate": leaf.pem, "status": status, "updated_at": order.updated_at}))
        }
    }
}

#[derive(Deserialize)]
struct RevokeRequest {
    revocation_reason: String,
    #[allow(dead_code, reason = "optional on the wire (0 or absent: now), not used by the fake")]
    #[serde(default)]
    revocation_time: i64,
}

/// `PATCH certificates/{serial}`: 204 for an issued certificate and a reason Atlas knows.
fn revoke(state: &mut State, call: &Call, serial: &str) -> Reply {
    let request: RevokeRequest = match call.json() {
        Ok(request) => request,
        Err(why) => return problem(400, &why),
    };
    if !REASONS.contains(&request.revocation_reason.as_str()) {
        return problem(422, &format!("revocation_reason {:?}: one of {REASONS:?}", request.revocation_reason));
    }
    let Some(index) = state.orders.iter().position(|o| serial_hex(&o.serial).eq_ignore_ascii_case(serial)) else {
        return problem(404, "certificate not found");
    };
    if state.orders[index].leaf().is_none() {
        return problem(422, "only issued certificates can be revoked");
    }
    state.revoke(index, serial, &request.revocation_reason);
    Reply::empty(204)
}

/// `GET stats/issued?page=&per_page=&from=&to=`: the certificates issued between `from` and `to`
/// (Unix seconds, both required), oldest first, one page of them; `Total-Count` counts them all.
fn issued(state: &State, call: &Call) -> Reply {
    let (from, to, page, per_page) = match page_query(call) {
        Ok(query) => query,
        Err(why) => return problem(400, &why),
    };
    let mut leaves: Vec<_> =
        state.orders.iter().filter_map(|o| o.leaf()).filter(|l| (from..=to).contains(&l.issued_at)).collect();
    leaves.sort_by_key(|l| l.issued_at);
    let total = leaves.len();
    let listed: Vec<Value> = leaves
        .iter()
        .skip(((page - 1) * per_page) as usize)
        .take(per_page as usize)
        .map(|l| json!({"serial_number": l.serial_hex(), "not_before": l.not_before, "not_after": l.not_after}))
        .collect();
    Reply::json(200, &Value::Array(listed))
        .with_header(HeaderName::from_static("total-count"), HeaderValue::from(total))
}

/// `from`, `to`, `page` (1 by default) and `per_page` (100 by default, at most 100).
fn page_query(call: &Call) -> Result<(i64, i64, i64, i64), String> {
    let number = |name: &str, default: Option<i64>| match call.query(name) {
        Some(value) => value.parse::<i64>().map_err(|_| format!("{name}: {value:?} is not a number")),
        None => default.ok_or_else(|| format!("{name} is required (Unix seconds)")),
    };
    let (from, to) = (number("from", None)?, number("to", None)?);
    let (page, per_page) = (number("page", Some(1))?, number("per_page", Some(100))?);
    if page < 1 || !(1..=100).contains(&per_page) {
        return Err("page must be at least 1 and per_page between 1 and 100".into());
    }
    Ok((from, to, page, per_page))
}

/// The account's validation policy, in the shape of Atlas's (fields the connector never sends
/// are FORBIDDEN or empty).
fn validation_policy() -> Value {
    let eku_oids = ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"];
    json!({
        "validity": {
            "secondsmin": SECONDS_MIN,
            "secondsmax": SECONDS_MAX,
            "not_before_negative_skew": NOT_BEFORE_SKEW,
            "not_before_positive_skew": NOT_BEFORE_SKEW,
            "issuer_expiry": "FAIL",
        },
        "subject_dn": {
            "common_name": {"presence": "REQUIRED", "format": "^.*$"},
            "organization": {"presence": "FORBIDDEN", "format": ""},
            "country": {"presence": "FORBIDDEN", "format": ""},
        },
        "san": {
            "dns_names": {"static": false, "list": [".*"], "mincount": 0, "maxcount": 100},
            "ip_addresses": {"static": false, "list": [".*"], "mincount": 0, "maxcount": 10},
            "emails": {"static": false, "list": [], "mincount": 0, "maxcount": 0},
            "uris": {"static": false, "list": [], "mincount": 0, "maxcount": 0},
        },
        "extended_key_usages": {
            "ekus": {"static": false, "list": eku_oids, "mincount": 0, "maxcount": 2},
            "critical": false,
        },
        "public_key": {"key_type": "ANY", "allowed_lengths": [256, 384, 2048, 3072, 4096], "key_format": "PKCS10"},
        "public_key_signature": "OPTIONAL",
    })
}

fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn problem(status: u16, description: &str) -> Reply {
    Reply::body(status, "application/problem+json", json!({ "description": description }).to_string())
}

fn not_found() -> Reply {
    problem(404, "not found")
}
