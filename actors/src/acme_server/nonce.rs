//! ACME nonces (RFC 8555 §6.5) that cost nothing to hand out: a nonce is a version byte, the
//! time it was made (milliseconds), 16 random bytes and a 16-byte HMAC tag over them under a key
//! derived from the sealing key, so every replica sharing the passphrase makes and recognises
//! the same nonces, and `HEAD /new-nonce` and every response's `Replay-Nonce` touch no database.
//!
//! Redeeming one (every signed request) checks, cheapest first: the shape, the tag (in constant
//! time), the age (at most the nonce lifetime, `CERTCTL_ACME_SERVER_NONCE_TTL`, plus a little
//! clock skew between replicas), and then single use, which must be shared by the replicas: the
//! caller records the nonce's random part in the database (`acme_nonces_used`, a primary key
//! insert that fails on a replay) with its expiry, and a sweep drops rows past it. The replay
//! window is therefore the lifetime itself, and the table holds at most a lifetime of requests.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};

use crate::crypto::seal::SealingKey;

/// The nonce format's version byte.
const VERSION: u8 = 1;
/// Version, time, random part.
const BODY_LEN: usize = 1 + 8 + 16;
const TAG_LEN: usize = 16;
/// What the MAC is computed over besides the body, so a nonce can never pass for another of the
/// server's MACed values (cursors).
const LABEL: &[u8] = b"certctl acme nonce v1\0";
/// How far ahead of this replica's clock another replica's nonce may be.
const CLOCK_SKEW: Duration = Duration::from_secs(5);

/// Makes and checks nonces.
#[derive(Clone)]
pub struct Nonces {
    sealing: Arc<SealingKey>,
    /// How long a nonce is accepted.
    lifetime: Duration,
}

/// A nonce whose tag and age are good: what single use is recorded under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreshNonce {
    /// The random part, unique per nonce.
    pub id: [u8; 16],
    /// When it stops being accepted (the row recording its use may go then).
    pub expires_at: DateTime<Utc>,
}

/// Why a nonce was refused (all answered `badNonce`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceError {
    /// Not one of this server's nonces: wrong length, not base64url, wrong version.
    Malformed,
    /// The tag does not match: made with another key, or altered.
    Forged,
    /// Older than the lifetime (or from further in the future than clock skew explains).
    Expired,
}

impl std::fmt::Display for NonceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NonceError::Malformed => "the nonce is not one this server issued",
            NonceError::Forged => "the nonce was not made by this server (another key, or altered)",
            NonceError::Expired => "the nonce has expired; use the fresh one in Replay-Nonce",
        })
    }
}

impl Nonces {
    pub fn new(sealing: Arc<SealingKey>, lifetime: Duration) -> Nonces {
        Nonces { sealing, lifetime }
    }

    fn tag(&self, body: &[u8]) -> [u8; TAG_LEN] {
        let full = self.sealing.mac(&[LABEL, body].concat());
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// A new nonce made now.
    pub fn issue(&self) -> String {
        self.issue_at(Utc::now())
    }

    fn issue_at(&self, now: DateTime<Utc>) -> String {
        let mut body = [0u8; BODY_LEN];
        body[0] = VERSION;
        body[1..9].copy_from_slice(&now.timestamp_millis().to_be_bytes());
        // The system RNG does not fail on the platforms aws-lc-rs supports; were it to, the
        // nonce would still be unique by its time and tag, only less unpredictable.
        let _ = aws_lc_rs::rand::fill(&mut body[9..]);
        let tag = self.tag(&body);
        URL_SAFE_NO_PAD.encode([&body[..], &tag[..]].concat())
    }

    /// Checks a nonce's shape, tag and age.
    pub fn check(&self, nonce: &str) -> Result<FreshNonce, NonceError> {
        self.check_at(nonce, Utc::now())
    }

    fn check_at(&self, nonce: &str, now: DateTime<Utc>) -> Result<FreshNonce, NonceError> {
        let bytes = URL_SAFE_NO_PAD.decode(nonce).map_err(|_| NonceError::Malformed)?;
        if bytes.len() != BODY_LEN + TAG_LEN || bytes[0] != VERSION {
            return Err(NonceError::Malformed);
        }
        let (body, tag) = bytes.split_at(BODY_LEN);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&self.tag(body)[..], tag)) {
            return Err(NonceError::Forged);
        }
        let mut millis = [0u8; 8];
        millis.copy_from_slice(&body[1..9]);
        let issued = DateTime::<Utc>::from_timestamp_millis(i64::from_be_bytes(millis)).ok_or(NonceError::Malformed)?;
        let lifetime = chrono::Duration::from_std(self.lifetime).unwrap_or(chrono::Duration::MAX);
        let skew = chrono::Duration::from_std(CLOCK_SKEW).unwrap_or_default();
        if issued > now + skew || issued + lifetime < now {
            return Err(NonceError::Expired);
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&body[9..]);
        // The row that makes it single use must outlive the nonce on every replica's clock.
        Ok(FreshNonce { id, expires_at: issued + lifetime + skew })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonces(passphrase: &str) -> Nonces {
        Nonces::new(Arc::new(SealingKey::derive(passphrase, b"salt-salt-salt-1", 1)), Duration::from_secs(300))
    }

    #[test]
    fn a_nonce_is_recognised_by_every_replica_with_the_key_and_no_other() {
        let (one, other_replica, stranger) = (nonces("shared"), nonces("shared"), nonces("another"));
        let nonce = one.issue();
        assert_eq!(nonce.len(), 55, "41 bytes, base64url");
        let fresh = other_replica.check(&nonce).expect("the same key recognises it");
        assert_eq!(fresh, one.check(&nonce).unwrap());
        assert_eq!(stranger.check(&nonce), Err(NonceError::Forged));
        assert_ne!(one.issue(), nonce, "unique");
    }

    #[test]
    fn altered_old_and_future_nonces_are_refused() {
        let n = nonces("k");
        let now = Utc::now();
        let nonce = n.issue_at(now);
        let mut bytes = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
        bytes[12] ^= 1;
        assert_eq!(n.check(&URL_SAFE_NO_PAD.encode(&bytes)), Err(NonceError::Forged));
        assert_eq!(n.check("short"), Err(NonceError::Malformed));
        assert_eq!(n.check("!!"), Err(NonceError::Malformed));
        let old = n.issue_at(now - chrono::Duration::seconds(301));
        assert_eq!(n.check_at(&old, now), Err(NonceError::Expired));
        let future = n.issue_at(now + chrono::Duration::seconds(60));
        assert_eq!(n.check_at(&future, now), Err(NonceError::Expired));
        let almost = n.issue_at(now - chrono::Duration::seconds(299));
        let fresh = n.check_at(&almost, now).unwrap();
        assert!(fresh.expires_at > now + chrono::Duration::seconds(5), "the clock skew allowance included");
        assert!(fresh.expires_at < now + chrono::Duration::seconds(7));
    }
}
