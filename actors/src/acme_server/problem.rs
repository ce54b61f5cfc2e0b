//! ACME problem documents (RFC 8555 §6.7, RFC 9773 §7.4 and the profiles draft): every error the
//! ACME server answers is one of these, with its type under `urn:ietf:params:acme:error:`, the
//! HTTP status it goes with, and a detail meant for the operator of the client.

use serde::Serialize;

/// The ACME error types certctl answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcmeErrorType {
    AccountDoesNotExist,
    AlreadyReplaced,
    AlreadyRevoked,
    BadCsr,
    BadNonce,
    BadPublicKey,
    BadRevocationReason,
    BadSignatureAlgorithm,
    Connection,
    Dns,
    ExternalAccountRequired,
    IncorrectResponse,
    InvalidContact,
    InvalidProfile,
    Malformed,
    OrderNotReady,
    RateLimited,
    RejectedIdentifier,
    ServerInternal,
    Tls,
    Unauthorized,
    UnsupportedContact,
    UnsupportedIdentifier,
    UserActionRequired,
}

impl AcmeErrorType {
    /// The type's name after the URN prefix.
    pub fn name(self) -> &'static str {
        match self {
            AcmeErrorType::AccountDoesNotExist => "accountDoesNotExist",
            AcmeErrorType::AlreadyReplaced => "alreadyReplaced",
            AcmeErrorType::AlreadyRevoked => "alreadyRevoked",
            AcmeErrorType::BadCsr => "badCSR",
            AcmeErrorType::BadNonce => "badNonce",
            AcmeErrorType::BadPublicKey => "badPublicKey",
            AcmeErrorType::BadRevocationReason => "badRevocationReason",
            AcmeErrorType::BadSignatureAlgorithm => "badSignatureAlgorithm",
            AcmeErrorType::Connection => "connection",
            AcmeErrorType::Dns => "dns",
            AcmeErrorType::ExternalAccountRequired => "externalAccountRequired",
            AcmeErrorType::IncorrectResponse => "incorrectResponse",
            AcmeErrorType::InvalidContact => "invalidContact",
            AcmeErrorType::InvalidProfile => "invalidProfile",
            AcmeErrorType::Malformed => "malformed",
            AcmeErrorType::OrderNotReady => "orderNotReady",
            AcmeErrorType::RateLimited => "rateLimited",
            AcmeErrorType::RejectedIdentifier => "rejectedIdentifier",
            AcmeErrorType::ServerInternal => "serverInternal",
            AcmeErrorType::Tls => "tls",
            AcmeErrorType::Unauthorized => "unauthorized",
            AcmeErrorType::UnsupportedContact => "unsupportedContact",
            AcmeErrorType::UnsupportedIdentifier => "unsupportedIdentifier",
            AcmeErrorType::UserActionRequired => "userActionRequired",
        }
    }

    /// A short summary of the kind (RFC 9457 `title`).
    pub fn title(self) -> &'static str {
        match self {
            AcmeErrorType::AccountDoesNotExist => "No such account",
            AcmeErrorType::AlreadyReplaced => "Certificate already replaced",
            AcmeErrorType::AlreadyRevoked => "Certificate already revoked",
            AcmeErrorType::BadCsr => "Unacceptable CSR",
            AcmeErrorType::BadNonce => "Unacceptable nonce",
            AcmeErrorType::BadPublicKey => "Unsupported public key",
            AcmeErrorType::BadRevocationReason => "Revocation reason not allowed",
            AcmeErrorType::BadSignatureAlgorithm => "Signature algorithm not supported",
            AcmeErrorType::Connection => "Could not connect to the validation target",
            AcmeErrorType::Dns => "DNS problem during validation",
            AcmeErrorType::ExternalAccountRequired => "External account binding required",
            AcmeErrorType::IncorrectResponse => "Challenge response did not match",
            AcmeErrorType::InvalidContact => "Invalid contact",
            AcmeErrorType::InvalidProfile => "Invalid profile",
            AcmeErrorType::Malformed => "Malformed request",
            AcmeErrorType::OrderNotReady => "Order not ready",
            AcmeErrorType::RateLimited => "Rate limited",
            AcmeErrorType::RejectedIdentifier => "Identifier rejected",
            AcmeErrorType::ServerInternal => "Internal server error",
            AcmeErrorType::Tls => "TLS problem during validation",
            AcmeErrorType::Unauthorized => "Unauthorized",
            AcmeErrorType::UnsupportedContact => "Unsupported contact",
            AcmeErrorType::UnsupportedIdentifier => "Unsupported identifier",
            AcmeErrorType::UserActionRequired => "User action required",
        }
    }

    /// The HTTP status the type goes with where RFC 8555 or common practice fixes one; the
    /// caller may choose another (401 for a deactivated account's `unauthorized`).
    pub fn status(self) -> u16 {
        match self {
            AcmeErrorType::Unauthorized | AcmeErrorType::OrderNotReady | AcmeErrorType::UserActionRequired => 403,
            AcmeErrorType::AlreadyReplaced => 409,
            AcmeErrorType::RateLimited => 429,
            AcmeErrorType::ServerInternal => 500,
            _ => 400,
        }
    }
}

/// One ACME problem document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeProblem {
    pub kind: AcmeErrorType,
    pub status: u16,
    /// What went wrong, for whoever runs the client.
    pub detail: String,
    /// `badSignatureAlgorithm`: the algorithms the server accepts (RFC 8555 §6.2).
    pub algorithms: Option<&'static [&'static str]>,
}

impl AcmeProblem {
    pub fn new(kind: AcmeErrorType, detail: impl Into<String>) -> AcmeProblem {
        AcmeProblem { kind, status: kind.status(), detail: detail.into(), algorithms: None }
    }

    pub fn malformed(detail: impl Into<String>) -> AcmeProblem {
        AcmeProblem::new(AcmeErrorType::Malformed, detail)
    }

    /// The same problem with another HTTP status.
    pub fn with_status(mut self, status: u16) -> AcmeProblem {
        self.status = status;
        self
    }

    /// The full type URN.
    pub fn type_urn(&self) -> String {
        format!("urn:ietf:params:acme:error:{}", self.kind.name())
    }

    /// The JSON body (`application/problem+json`).
    pub fn body(&self, instance: Option<&str>) -> ProblemBody {
        ProblemBody {
            problem_type: self.type_urn(),
            title: self.kind.title(),
            detail: self.detail.clone(),
            status: self.status,
            instance: instance.map(str::to_owned),
            algorithms: self.algorithms.map(|a| a.to_vec()),
        }
    }
}

impl std::fmt::Display for AcmeProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.detail)
    }
}

/// A problem as it goes on the wire.
#[derive(Debug, Serialize)]
pub struct ProblemBody {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: &'static str,
    pub detail: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<&'static str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_urns_with_their_statuses() {
        let problem = AcmeProblem::new(AcmeErrorType::BadNonce, "stale");
        assert_eq!(problem.type_urn(), "urn:ietf:params:acme:error:badNonce");
        assert_eq!(problem.status, 400);
        assert_eq!(AcmeProblem::new(AcmeErrorType::RateLimited, "").status, 429);
        assert_eq!(AcmeProblem::new(AcmeErrorType::Unauthorized, "").with_status(401).status, 401);
        let body = serde_json::to_value(AcmeProblem::new(AcmeErrorType::BadCsr, "x").body(Some("/acme/x"))).unwrap();
        assert_eq!(body["type"], "urn:ietf:params:acme:error:badCSR");
        assert!(body.get("algorithms").is_none());
    }
}
