//! ACME Renewal Information (RFC 9773): the certificate id of a `renewalInfo` request
//! (`base64url(AKI keyIdentifier) "." base64url(serial)`), and the window certctl suggests. The
//! window follows certctl's own plan for the certificate: from its `renew_at` (the renewal
//! policy's point, or a CA's own window) to halfway between that and the expiry. A certificate
//! that is revoked, expired or already replaced by a newer version should be renewed now: its
//! window lies in the past, which RFC 9773 §4.2 tells clients to read as "renew immediately".

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};

use super::problem::AcmeProblem;

/// A parsed certificate id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertId {
    /// The issuer's key identifier, as in the certificate's Authority Key Identifier.
    pub key_identifier: Vec<u8>,
    /// The serial as lower-case hex without leading zeros (how certctl matches serials).
    pub serial: String,
}

impl CertId {
    /// Reads `aki.serial`; both parts base64url without padding, neither empty.
    pub fn parse(id: &str) -> Result<CertId, AcmeProblem> {
        let malformed = || {
            AcmeProblem::malformed(format!(
                "{id:?} is not a certificate id: base64url(authority key identifier) \".\" base64url(serial number)"
            ))
        };
        let (aki, serial) = id.split_once('.').ok_or_else(malformed)?;
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok().filter(|b| !b.is_empty());
        let (Some(key_identifier), Some(serial)) = (decode(aki), decode(serial)) else {
            return Err(malformed());
        };
        let hex: String = serial.iter().map(|b| format!("{b:02x}")).collect();
        let serial = hex.trim_start_matches('0').to_owned();
        Ok(CertId { key_identifier, serial: if serial.is_empty() { "0".into() } else { serial } })
    }
}

/// What certctl knows of the certificate a client asks about.
#[derive(Clone, Debug)]
pub struct Known {
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// The managed certificate's `renew_at`, when this version is its newest.
    pub planned: Option<DateTime<Utc>>,
    /// Revoked, or a newer version replaced it: renew now.
    pub renew_now: bool,
}

/// The suggested window (`start` < `end`).
pub fn window(known: &Known, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    if known.renew_now || known.not_after <= now {
        return (now - Duration::hours(2), now - Duration::hours(1));
    }
    let lifetime = known.not_after - known.not_before;
    // Without a plan of certctl's: two thirds into the lifetime (the renewal policies' default).
    let start = known.planned.unwrap_or(known.not_before + lifetime * 2 / 3).min(known.not_after);
    let end = (start + (known.not_after - start) / 2).max(start + Duration::minutes(1)).min(known.not_after);
    if end <= start {
        return (start - Duration::minutes(1), start);
    }
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_ids_read_as_the_rfc_shows_them() {
        // RFC 9773 §4.1's example: AKI 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4,
        // serial 00:87:65:43:21.
        let id = CertId::parse("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE").unwrap();
        assert_eq!(id.key_identifier[0], 0x69);
        assert_eq!(id.serial, "87654321", "the leading zero octet goes");
        assert!(CertId::parse("aaaa").is_err());
        assert!(CertId::parse(".AIdlQyE").is_err());
        assert!(CertId::parse("!!.AIdlQyE").is_err());
        assert_eq!(
            CertId::parse("aaaa.bbbb").unwrap().serial,
            "6db6db",
            "well-formed: an unknown certificate, not an error"
        );
    }

    #[test]
    fn windows_follow_the_plan_or_say_now() {
        let now = Utc::now();
        let known = Known {
            not_before: now - Duration::days(10),
            not_after: now + Duration::days(80),
            planned: Some(now + Duration::days(50)),
            renew_now: false,
        };
        let (start, end) = window(&known, now);
        assert_eq!(start, now + Duration::days(50));
        assert_eq!(end, now + Duration::days(65));
        let unplanned = window(&Known { planned: None, ..known.clone() }, now);
        assert_eq!(unplanned.0, now + Duration::days(50), "two thirds of 90 days after day 0");
        let revoked = window(&Known { renew_now: true, ..known.clone() }, now);
        assert!(revoked.1 < now && revoked.0 < revoked.1);
        let expired = window(&Known { not_after: now - Duration::days(1), ..known }, now);
        assert!(expired.1 < now);
    }
}
