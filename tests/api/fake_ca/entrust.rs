//! Fake Entrust CA Gateway (CAGW), REST API v1 (research/entrust.md), under the context path
//! `/cagw`: mutual TLS on every connection and no auth header. One CA ([`ENTRUST_CA_ID`]) with
//! one profile ([`ENTRUST_PROFILE_ID`]). An enrollment brings the CSR as base64 DER and the
//! names in `subjectVariables`/`subjectAltNames` (the leaf carries those, not the CSR's); it
//! answers the certificate at once (200 `ISSUED`) or, when the behaviour wants approval
//! (`pending_polls`), 201 `ACCEPTED` with an empty body. The gateway has no endpoint that reads
//! an enrollment back, so a client follows the CA's certificate events: each `GET
//! …/certificate-events` is this fake's status poll, and moves every pending enrollment on at
//! once. Also the certificate by serial, revocation as a `RevokeAction`, and the CA, its status
//! and the profile. Errors are `{"type":"ErrorResponse","error":{"code":"cagw-NNNN",…}}`; the
//! codes other than `cagw-4018` (unknown CA) are the fake's own, since no source lists them.

use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat};
use serde::Deserialize;
use serde_json::{json, Value};

use super::server::{Call, Reply};
use super::signing::{pem_block, random_serial, read_csr, serial_hex, Leaf, Subject};
use super::state::{NewOrder, OrderStatus, PollFault, State, Sweep};
use super::{Shared, ENTRUST_CA_ID, ENTRUST_PROFILE_ID};

/// The gateway's context path: the connector's `api_url` ends with it.
pub(super) const BASE_PATH: &str = "/cagw";
/// Where every resource lives.
const CAS_PATH: &str = "/cagw/v1/certificate-authorities";
/// A profile's default validity, and the longest it grants (longer requests are cut to it).
const DEFAULT_VALIDITY_SECS: u64 = 365 * 86_400;
const MAX_VALIDITY_SECS: u64 = 398 * 86_400;
/// Certificate events per page: the default (PKIaaS's) and the most a client may ask for.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 100;
/// The `RevokeAction` reasons the gateway knows.
const REASONS: [&str; 8] = [
    "unspecified",
    "keyCompromise",
    "caCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "privilegeWithdrawn",
];

pub(super) fn handle(shared: &Shared, call: &Call) -> Reply {
    let Some(segments) = call.segments(CAS_PATH) else {
        return error(404, "cagw-4004", "Resource not found");
    };
    let mut state = shared.state();
    if state.behaviour.refuse_credentials {
        return error(403, "cagw-4003", "Client certificate is not authorized to access this resource");
    }
    // A client may escape the `~` of a PKIaaS id; the gateway reads both spellings.
    if segments.first().is_some_and(|ca| ca.replace("%7E", "~").replace("%7e", "~") != ENTRUST_CA_ID) {
        return error(404, "cagw-4018", "CA with specified name not found");
    }
    match (call.method.as_str(), segments.as_slice()) {
        ("GET", []) => {
            let entry = ca_entry(shared, &fields(call, "caList"), true);
            Reply::json(200, &json!({"type": "CAListResponse", "caList": [entry]}))
        }
        ("GET", [_]) => {
            Reply::json(200, &json!({"type": "CAResponse", "ca": ca_entry(shared, &fields(call, "ca"), false)}))
        }
        ("GET", [_, "status"]) => Reply::json(200, &json!({"type": "CAStatusResponse", "status": "UP"})),
        ("GET", [_, "profiles", id]) if *id == ENTRUST_PROFILE_ID => Reply::json(200, &profile()),
        ("GET", [_, "profiles", _]) => error(404, "cagw-4019", "Profile with specified id not found"),
        ("POST", [_, "enrollments"]) => enroll(&mut state, shared, call),
        ("GET", [_, "certificate-events"]) => events(&mut state, shared, call),
        ("GET", [_, "certificates", serial]) => certificate(&state, shared, serial),
        ("POST", [_, "certificates", serial, "actions"]) => action(&mut state, call, serial),
        _ => error(404, "cagw-4004", "Resource not found"),
    }
}

/// The `$fields` asked for under `root` (`ca` or `caList`), without the root: `ca.certificate`
/// gives `certificate`. Absent, the CA's certificate and chain are left out, as the gateway does.
fn fields(call: &Call, root: &str) -> Vec<String> {
    let prefix = format!("{root}.");
    call.query("$fields")
        .unwrap_or_default()
        .split(',')
        .filter_map(|field| field.trim().strip_prefix(&prefix).map(str::to_string))
        .collect()
}

/// The CA resource, with its certificate and chain when `fields` ask for them. The list always
/// has the (empty) chain; the single CA only on request.
fn ca_entry(shared: &Shared, fields: &[String], in_list: bool) -> Value {
    let asks = |name: &str| fields.iter().any(|f| f == name || f.starts_with(&format!("{name}.")));
    let mut entry = json!({
        "id": ENTRUST_CA_ID,
        "name": format!("{}: {ENTRUST_CA_ID}", shared.authority.ca_common_name()),
        "properties": {"connector-name": "com.entrust.PKIHub", "type": "PKIaaS Certificate Authority"},
    });
    if asks("certificate") {
        entry["certificate"] = json!({"certificateData": STANDARD.encode(shared.authority.ca_der())});
    }
    // The fake CA is a root: nothing stands above it.
    if in_list || asks("chain") {
        entry["chain"] = json!([]);
    }
    entry
}

fn profile() -> Value {
    json!({
        "type": "ProfileResponse",
        "profile": {
            "id": ENTRUST_PROFILE_ID,
            "name": ENTRUST_PROFILE_ID,
            "properties": {},
            "subjectVariableRequirements": [{"name": "cn", "required": true}],
            "subjectAltNameRequirements": [{"type": "dNSName", "required": false},
                                           {"type": "iPAddress", "required": false}],
        },
        "message": {"message": "Profile retrieved successfully.", "details": []},
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnrollmentRequest {
    profile_id: String,
    required_format: RequiredFormat,
    #[serde(default)]
    csr: String,
    #[serde(default)]
    subject_variables: Vec<Typed>,
    #[serde(default)]
    subject_alt_names: Vec<Typed>,
    #[serde(default)]
    optional_certificate_request_details: Option<RequestDetails>,
    #[serde(default)]
    include_ca: bool,
}

#[derive(Deserialize)]
struct RequiredFormat {
    format: String,
}

/// A subject variable or a subject alternative name.
#[derive(Deserialize)]
struct Typed {
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestDetails {
    validity_period: Option<String>,
}

/// What an enrollment asks for, checked against the profile.
struct Enrollment {
    csr_pem: String,
    subject: Subject,
    names: Vec<String>,
    validity_secs: u64,
    include_ca: bool,
}

/// `POST …/enrollments`: issued at once (200), or accepted for approval (201) and issued at a
/// later events poll. A request the profile cannot take is 400 and not counted.
fn enroll(state: &mut State, shared: &Shared, call: &Call) -> Reply {
    let enrollment = match read_enrollment(call) {
        Ok(enrollment) => enrollment,
        Err(why) => return error(400, "cagw-4000", &why),
    };
    state.submissions += 1;
    let subject_name = format!("cn={}", enrollment.subject.common_name);
    if state.behaviour.reject {
        let why = format!("Enrollment rejected: subject {subject_name} is not allowed by profile {ENTRUST_PROFILE_ID}");
        return error(400, "cagw-4000", &why);
    }
    let issuer_name = format!("cn={}", shared.authority.ca_common_name());
    let mut answer = json!({
        "type": "EnrollmentResponse",
        "enrollment": {"id": uuid::Uuid::new_v4().to_string(), "subjectName": subject_name, "issuerName": issuer_name,
                       "chain": []},
    });
    let new_order = |status| NewOrder {
        common_name: enrollment.subject.common_name.clone(),
        names: enrollment.names.clone(),
        subject: Some(enrollment.subject.clone()),
        csr_pem: enrollment.csr_pem.clone(),
        comments: String::new(),
        validity_secs: enrollment.validity_secs,
        status,
    };
    if state.behaviour.pending_polls > 0 {
        state.add_order(new_order(OrderStatus::Pending));
        answer["message"] = message("Enrollment accepted; approval required.");
        answer["enrollment"]["status"] = json!("ACCEPTED");
        answer["enrollment"]["body"] = json!("");
        return Reply::json(201, &answer);
    }
    let signed = shared.authority.sign(
        &enrollment.csr_pem,
        enrollment.validity_secs,
        &random_serial(),
        Some(&enrollment.subject),
    );
    let leaf = match signed {
        Ok(leaf) => leaf,
        Err(why) => return error(500, "cagw-5000", &why),
    };
    answer["message"] = message("Enrollment was successful.");
    let details = &mut answer["enrollment"];
    details["status"] = json!("ISSUED");
    details["serialNumber"] = json!(serial_of(&leaf));
    details["validityPeriod"] = json!(validity_period(&leaf));
    details["body"] = json!(STANDARD.encode(&leaf.der));
    if enrollment.include_ca {
        details["chain"] = json!([{"certificateData": STANDARD.encode(shared.authority.ca_der())}]);
    }
    state.add_order(new_order(OrderStatus::Issued(leaf)));
    Reply::json(200, &answer)
}

/// The enrollment's body, held to the profile: its id, X509 output, a base64 DER CSR (no PEM
/// armour, no newlines), a `cn`, DNS and IP names only, and a validity the fake can read.
fn read_enrollment(call: &Call) -> Result<Enrollment, String> {
    let request: EnrollmentRequest = call.json()?;
    if request.profile_id != ENTRUST_PROFILE_ID {
        return Err(format!("Profile with id {:?} not found for this CA", request.profile_id));
    }
    if request.required_format.format != "X509" {
        return Err(format!("requiredFormat.format {:?}: the fake answers X509 only", request.required_format.format));
    }
    if request.csr.contains("-----") || request.csr.chars().any(char::is_whitespace) {
        return Err("csr must be base64 DER, with the PEM header, footer and newlines removed".into());
    }
    let der = STANDARD.decode(&request.csr).map_err(|e| format!("csr is not base64: {e}"))?;
    let csr_pem = pem_block("CERTIFICATE REQUEST", &der);
    read_csr(&csr_pem)?;
    let mut common_name = String::new();
    for variable in &request.subject_variables {
        match variable.kind.as_str() {
            "cn" => common_name.clone_from(&variable.value),
            other => return Err(format!("subject variable {other:?} is not in profile {ENTRUST_PROFILE_ID}")),
        }
    }
    if common_name.is_empty() {
        return Err("No SubjectName provided in Request or CSR".into());
    }
    let (mut dns_names, mut ip_addresses) = (Vec::new(), Vec::<IpAddr>::new());
    for san in &request.subject_alt_names {
        match san.kind.as_str() {
            "dNSName" => dns_names.push(san.value.clone()),
            "iPAddress" => {
                ip_addresses.push(san.value.parse().map_err(|_| format!("iPAddress {:?} is not an IP", san.value))?)
            }
            other => {
                return Err(format!("subjectAltName type {other:?} is not allowed by profile {ENTRUST_PROFILE_ID}"))
            }
        }
    }
    let validity_secs = match request.optional_certificate_request_details.and_then(|d| d.validity_period) {
        Some(period) => parse_period(&period)
            .ok_or_else(|| format!("validityPeriod {period:?}: the fake reads PT<n>S, PT<n>M, PT<n>H or P<n>D"))?
            .min(MAX_VALIDITY_SECS),
        None => DEFAULT_VALIDITY_SECS,
    };
    let names = dns_names.iter().cloned().chain(ip_addresses.iter().map(IpAddr::to_string)).collect();
    Ok(Enrollment {
        csr_pem,
        subject: Subject { common_name, dns_names, ip_addresses, extended_key_usages: Vec::new() },
        names,
        validity_secs,
        include_ca: request.include_ca,
    })
}

/// An ISO 8601 duration of one unit, in seconds (`PT3600S`, `PT60M`, `PT24H`, `P90D`).
fn parse_period(period: &str) -> Option<u64> {
    let (number, scale) = if let Some(time) = period.strip_prefix("PT") {
        let (number, unit) = time.split_at(time.len().checked_sub(1)?);
        (number, [("S", 1), ("M", 60), ("H", 3600)].into_iter().find(|(u, _)| *u == unit)?.1)
    } else {
        (period.strip_prefix('P')?.strip_suffix('D')?, 86_400)
    };
    number.parse::<u64>().ok().filter(|n| *n > 0)?.checked_mul(scale)
}

/// `GET …/certificate-events?startDate=&preferredPageSize=&nextPageIndex=`: the status poll
/// (counted, faults, every pending order moved on), then one page of the issued and revoked
/// events since `startDate`, oldest first. A malformed query is 400 and moves nothing.
fn events(state: &mut State, shared: &Shared, call: &Call) -> Reply {
    let (start, page_size, offset) = match events_query(call) {
        Ok(query) => query,
        Err(why) => return error(400, "cagw-4000", &why),
    };
    match state.poll_all(&shared.authority) {
        Sweep::Fault(PollFault::Drop) => return Reply::Drop,
        Sweep::Fault(PollFault::ServerError) => return error(500, "cagw-5000", "Internal server error"),
        Sweep::Fault(PollFault::RateLimited { retry_after_secs }) => {
            return Reply::rate_limited(retry_after_secs, &error_body("cagw-4029", "Too many requests"));
        }
        Sweep::Failed(why) => return error(500, "cagw-5000", &why),
        Sweep::Done => {}
    }
    let mut events: Vec<(i64, Value)> = Vec::new();
    for order in &state.orders {
        let Some(leaf) = order.leaf() else { continue };
        if leaf.issued_at >= start {
            events.push((leaf.issued_at, event(leaf, "issued", leaf.issued_at, "")));
        }
        if matches!(order.status, OrderStatus::Revoked(_)) && order.updated_at >= start {
            events.push((order.updated_at, event(leaf, "revoked", order.updated_at, &order.revocation_reason)));
        }
    }
    // Stable: an order's issue comes before its revocation within the same second.
    events.sort_by_key(|(at, _)| *at);
    let total = events.len();
    let page: Vec<Value> = events.into_iter().skip(offset).take(page_size).map(|(_, event)| event).collect();
    let more = offset + page.len() < total;
    let mut answer = json!({
        "type": "CertificateEventListResponse",
        "metadata": {"currentCount": page.len(), "totalCount": total, "currentOffset": offset, "currentLimit": page_size},
        "morePages": more,
        "events": page,
    });
    if more {
        answer["nextPageIndex"] = json!((offset + page_size).to_string());
    }
    Reply::json(200, &answer)
}

/// `startDate` (RFC 3339, required) in Unix seconds, the page size and the offset.
fn events_query(call: &Call) -> Result<(i64, usize, usize), String> {
    let start = call.query("startDate").ok_or("startDate is required")?;
    let start = DateTime::parse_from_rfc3339(start).map_err(|e| format!("startDate {start:?}: {e}"))?.timestamp();
    let number = |name: &str, default: usize| match call.query(name) {
        Some(value) => value.parse::<usize>().map_err(|_| format!("{name}: {value:?} is not a number")),
        None => Ok(default),
    };
    let page_size = number("preferredPageSize", DEFAULT_PAGE)?;
    if page_size == 0 {
        return Err("preferredPageSize must be at least 1".into());
    }
    Ok((start, page_size.min(MAX_PAGE), number("nextPageIndex", 0)?))
}

/// A certificate event: `action` is `issued` or `revoked`, `at` in Unix seconds.
fn event(leaf: &Leaf, action: &str, at: i64, reason: &str) -> Value {
    json!({
        "action": action,
        "event": format!("Certificate {action}"),
        "eventDate": rfc3339(at),
        "serialNumber": serial_of(leaf),
        "certificate": STANDARD.encode(&leaf.der),
        "detail": "",
        "reason": reason,
    })
}

/// `GET …/certificates/{serial}`: an issued (or revoked) certificate; not a status poll.
fn certificate(state: &State, shared: &Shared, serial: &str) -> Reply {
    let found = state.orders.iter().find(|o| same_serial(&o.serial, serial));
    let Some((order, leaf)) = found.and_then(|order| Some((order, order.leaf()?))) else {
        return error(404, "cagw-4004", "Certificate with specified serial number not found");
    };
    let revoked = matches!(order.status, OrderStatus::Revoked(_));
    let mut certificate = json!({
        "status": if revoked { "revoked" } else { "normal" },
        "serialNumber": serial_of(leaf),
        "subjectName": format!("cn={}", order.common_name),
        "issuerName": format!("cn={}", shared.authority.ca_common_name()),
        "validityPeriod": validity_period(leaf),
        "certificateData": STANDARD.encode(&leaf.der),
    });
    if revoked {
        certificate["revocationInfo"] = json!({"comment": "", "revocationDate": rfc3339(order.updated_at),
                                               "reason": order.revocation_reason});
    }
    Reply::json(200, &json!({"type": "CertificateResponse", "certificate": certificate, "chain": []}))
}

#[derive(Deserialize)]
struct ActionRequest {
    action: Action,
}

#[derive(Deserialize)]
struct Action {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    comment: String,
}

/// `POST …/certificates/{serial}/actions` with a `RevokeAction` (the one action the fake takes).
/// Revoking a revoked certificate succeeds again (`succeedIfAlreadyInRequestedState`).
fn action(state: &mut State, call: &Call, serial: &str) -> Reply {
    let request: ActionRequest = match call.json() {
        Ok(request) => request,
        Err(why) => return error(400, "cagw-4000", &why),
    };
    let action = request.action;
    if action.kind != "RevokeAction" {
        return error(400, "cagw-4000", &format!("action type {:?}: the fake takes RevokeAction only", action.kind));
    }
    if !REASONS.contains(&action.reason.as_str()) {
        return error(400, "cagw-4000", &format!("reason {:?}: one of {REASONS:?}", action.reason));
    }
    let Some(index) = state.orders.iter().position(|o| same_serial(&o.serial, serial)) else {
        return error(404, "cagw-4004", "Certificate with specified serial number not found");
    };
    match state.orders[index].status {
        OrderStatus::Issued(_) => state.revoke(index, serial, &action.reason),
        OrderStatus::Revoked(_) => {}
        OrderStatus::Pending | OrderStatus::Rejected => {
            return error(400, "cagw-4000", "Only an issued certificate can be revoked");
        }
    }
    let answer = json!({"type": "RevokeAction", "id": uuid::Uuid::new_v4().to_string(), "status": "COMPLETED",
                        "reason": action.reason, "comment": action.comment,
                        "succeedIfAlreadyInRequestedState": true, "properties": {}});
    Reply::json(200, &json!({"type": "ActionResponse", "action": answer}))
}

/// Serials compare as numbers written in hex: any case, leading zeros or not.
fn same_serial(serial: &[u8], given: &str) -> bool {
    let ours = serial_hex(serial);
    ours.trim_start_matches('0').eq_ignore_ascii_case(given.trim_start_matches('0'))
}

/// The serial as the gateway writes it: lower-case hex.
fn serial_of(leaf: &Leaf) -> String {
    leaf.serial_hex().to_ascii_lowercase()
}

fn validity_period(leaf: &Leaf) -> String {
    format!("{}/{}", rfc3339(leaf.not_before), rfc3339(leaf.not_after))
}

fn rfc3339(unix_secs: i64) -> String {
    DateTime::from_timestamp(unix_secs, 0).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn message(text: &str) -> Value {
    json!({"message": text, "details": []})
}

fn error_body(code: &str, message: &str) -> Value {
    json!({"type": "ErrorResponse", "error": {"code": code, "message": message, "details": []}})
}

fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(status, &error_body(code, message))
}
