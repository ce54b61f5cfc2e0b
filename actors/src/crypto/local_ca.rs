//! The local CA's signing: generating a CA (a self-signed root kept for every replica), loading
//! one as a sub-CA from PEM files, and issuing leaves.
//!
//! Leaves get a random 159-bit serial, SKI and AKI, key usages by key type (DigitalSignature,
//! plus KeyEncipherment for RSA), the profile's EKUs, the certificate's SANs (DNS names, IP
//! addresses and e-mail addresses) and a lifetime capped by the profile. Everything here is CPU
//! work: callers run it on a blocking thread, never on an actor's or the HTTP server's.

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};

use super::key_algorithm::KeyAlgorithm;

/// How long a generated CA is valid.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);
/// Leaves start this far in the past, for clients whose clocks run a little behind.
const BACKDATE: Duration = Duration::from_secs(60);

/// Why a CA could not be built or a leaf issued.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("the CA certificate or key is unusable: {0}")]
    BadCa(String),
    #[error("the certificate request is invalid: {0}")]
    BadRequest(String),
    #[error("signing failed: {0}")]
    Signing(#[from] rcgen::Error),
}

/// A CA that can sign: its certificate, the chain above it (for a sub-CA) and its key.
pub struct LocalCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    /// Certificates above this CA, leaf-most first (empty for a root).
    parents_pem: String,
    key_algorithm: KeyAlgorithm,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa").field("key_algorithm", &self.key_algorithm).finish_non_exhaustive()
    }
}

/// What to put in a leaf.
#[derive(Clone, Debug)]
pub struct LeafRequest {
    pub common_name: String,
    pub sans: Vec<String>,
    /// Extended key usages by certctl's names (`serverAuth`, `clientAuth`, `codeSigning`,
    /// `emailProtection`, `timeStamping`).
    pub ekus: Vec<String>,
    pub lifetime: Duration,
}

/// An issued leaf and what the inventory records about it. `Debug` never shows the private key.
#[derive(Clone)]
pub struct IssuedLeaf {
    /// The leaf, then the CA chain.
    pub chain_pem: String,
    pub serial_hex: String,
    pub not_before: chrono::DateTime<chrono::Utc>,
    pub not_after: chrono::DateTime<chrono::Utc>,
    pub fingerprint_sha256: String,
    /// PKCS#8 PEM of the key when the server generated it.
    pub private_key_pem: Option<String>,
    pub key_algorithm: KeyAlgorithm,
    /// The issuer's suggested renewal window (ACME Renewal Information, RFC 9773), when it gives
    /// one: `renew_at` is then a random point inside it. The local CA gives none.
    pub renewal_window: Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
}

impl std::fmt::Debug for IssuedLeaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedLeaf")
            .field("serial_hex", &self.serial_hex)
            .field("not_after", &self.not_after)
            .field("fingerprint_sha256", &self.fingerprint_sha256)
            .field("private_key_pem", &self.private_key_pem.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

impl LocalCa {
    /// A new self-signed root named `name`.
    pub fn generate(name: &str, key_algorithm: KeyAlgorithm) -> Result<LocalCa, CaError> {
        let key = key_algorithm.generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "certctl");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(random_serial());
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_LIFETIME;
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        LocalCa::from_pem(&cert_pem, &key.serialize_pem(), "")
    }

    /// A CA from its certificate and key (PEM), with `parents_pem` the chain above it.
    pub fn from_pem(cert_pem: &str, key_pem: &str, parents_pem: &str) -> Result<LocalCa, CaError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| CaError::BadCa(format!("the private key: {e}")))?;
        let key_algorithm = KeyAlgorithm::of(&key).ok_or_else(|| CaError::BadCa("unsupported key type".into()))?;
        check_is_ca(cert_pem, &key)?;
        let issuer =
            Issuer::from_ca_cert_pem(cert_pem, key).map_err(|e| CaError::BadCa(format!("the certificate: {e}")))?;
        Ok(LocalCa { issuer, cert_pem: cert_pem.to_owned(), parents_pem: parents_pem.to_owned(), key_algorithm })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// This CA's certificate followed by the ones above it.
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.cert_pem, self.parents_pem)
    }

    pub fn parents_pem(&self) -> &str {
        &self.parents_pem
    }

    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    pub fn key_algorithm(&self) -> KeyAlgorithm {
        self.key_algorithm
    }

    /// Generates a key of `key_algorithm` and issues a leaf for it (server-side key generation).
    pub fn issue_with_new_key(
        &self,
        request: &LeafRequest,
        key_algorithm: KeyAlgorithm,
    ) -> Result<IssuedLeaf, CaError> {
        let key = key_algorithm.generate()?;
        let mut leaf = self.issue_for(request, &key, key_algorithm)?;
        leaf.private_key_pem = Some(key.serialize_pem());
        Ok(leaf)
    }

    /// Issues a leaf for the public key `subject_key`.
    pub fn issue_for(
        &self,
        request: &LeafRequest,
        subject_key: &impl rcgen::PublicKeyData,
        key_algorithm: KeyAlgorithm,
    ) -> Result<IssuedLeaf, CaError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        if !request.common_name.is_empty() {
            dn.push(DnType::CommonName, request.common_name.as_str());
        }
        params.distinguished_name = dn;
        params.subject_alt_names = request.sans.iter().map(|san| san_type(san)).collect::<Result<_, _>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = key_algorithm.leaf_key_usages();
        params.extended_key_usages = request.ekus.iter().map(|e| eku(e)).collect::<Result<_, _>>()?;
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + request.lifetime;
        let cert = params.signed_by(subject_key, &self.issuer)?;
        let serial = params.serial_number.as_ref().map(|s| hex(&s.to_bytes())).unwrap_or_default();
        Ok(IssuedLeaf {
            chain_pem: format!("{}{}", cert.pem(), self.chain_pem()),
            serial_hex: serial,
            not_before: to_chrono(params.not_before),
            not_after: to_chrono(params.not_after),
            fingerprint_sha256: hex(&Sha256::digest(cert.der())),
            private_key_pem: None,
            key_algorithm,
            renewal_window: None,
        })
    }
}

/// Refuses a certificate that is not a CA, may not sign certificates, or is not `key`'s.
fn check_is_ca(cert_pem: &str, key: &KeyPair) -> Result<(), CaError> {
    use rcgen::PublicKeyData;
    use x509_parser::pem::parse_x509_pem;

    let (_, pem) =
        parse_x509_pem(cert_pem.as_bytes()).map_err(|e| CaError::BadCa(format!("not a PEM certificate: {e}")))?;
    let cert = pem.parse_x509().map_err(|e| CaError::BadCa(format!("the certificate does not parse: {e}")))?;
    let is_ca = cert.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(CaError::BadCa("the certificate is not a CA (basicConstraints CA:TRUE missing)".into()));
    }
    if let Ok(Some(usage)) = cert.key_usage() {
        if !usage.value.key_cert_sign() {
            return Err(CaError::BadCa("the certificate's key usage does not allow signing certificates".into()));
        }
    }
    if cert.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(CaError::BadCa("the private key does not belong to the certificate".into()));
    }
    Ok(())
}

fn san_type(san: &str) -> Result<SanType, CaError> {
    let ia5 = |s: &str| s.to_owned().try_into().map_err(|_| CaError::BadRequest(format!("{s:?} is not ASCII")));
    Ok(if let Ok(ip) = san.parse::<IpAddr>() {
        SanType::IpAddress(ip)
    } else if san.contains('@') {
        SanType::Rfc822Name(ia5(san)?)
    } else {
        SanType::DnsName(ia5(san)?)
    })
}

fn eku(name: &str) -> Result<ExtendedKeyUsagePurpose, CaError> {
    Ok(match name {
        "serverAuth" => ExtendedKeyUsagePurpose::ServerAuth,
        "clientAuth" => ExtendedKeyUsagePurpose::ClientAuth,
        "codeSigning" => ExtendedKeyUsagePurpose::CodeSigning,
        "emailProtection" => ExtendedKeyUsagePurpose::EmailProtection,
        "timeStamping" => ExtendedKeyUsagePurpose::TimeStamping,
        "ocspSigning" => ExtendedKeyUsagePurpose::OcspSigning,
        other => return Err(CaError::BadRequest(format!("unknown extended key usage {other:?}"))),
    })
}

/// 20 random bytes with the top bit cleared: a positive 159-bit serial (RFC 5280 allows 20
/// octets; CA/B Forum asks for at least 64 random bits).
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 20];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source");
    bytes[0] &= 0x7f;
    if bytes[0] == 0 {
        bytes[0] = 1; // keep the full length so the DER encoding needs no leading zero tricks
    }
    SerialNumber::from_slice(&bytes)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn to_chrono(t: time::OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(sans: &[&str]) -> LeafRequest {
        LeafRequest {
            common_name: sans[0].to_string(),
            sans: sans.iter().map(|s| s.to_string()).collect(),
            ekus: vec!["serverAuth".into(), "clientAuth".into()],
            lifetime: Duration::from_secs(3600),
        }
    }

    /// `openssl verify` of `chain_pem`'s leaf against `ca_pem`, plus its text dump.
    fn openssl_verify(ca_pem: &str, chain_pem: &str) -> (bool, String) {
        let dir = std::env::temp_dir().join(format!("certctl-ca-test-{}-{}", std::process::id(), uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), ca_pem).unwrap();
        std::fs::write(dir.join("chain.pem"), chain_pem).unwrap();
        let verify = std::process::Command::new("openssl")
            .args(["verify", "-x509_strict", "-CAfile"])
            .arg(dir.join("ca.pem"))
            .arg(dir.join("chain.pem"))
            .output()
            .expect("running openssl");
        let text = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(dir.join("chain.pem"))
            .output()
            .expect("running openssl");
        let _ = std::fs::remove_dir_all(&dir);
        (verify.status.success(), String::from_utf8_lossy(&text.stdout).into_owned())
    }

    #[test]
    fn issued_leaves_verify_with_openssl_for_every_ca_key_type() {
        for algorithm in
            [KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP384, KeyAlgorithm::Ed25519, KeyAlgorithm::Rsa2048]
        {
            let ca = LocalCa::generate("certctl test CA", algorithm).unwrap();
            let leaf = ca
                .issue_with_new_key(
                    &request(&["api.example.com", "10.0.0.7", "ops@example.com"]),
                    KeyAlgorithm::EcdsaP256,
                )
                .unwrap();
            let (ok, text) = openssl_verify(ca.cert_pem(), &leaf.chain_pem);
            assert!(ok, "{algorithm}: openssl verify failed for\n{text}");
            assert!(text.contains("DNS:api.example.com"), "{text}");
            assert!(text.contains("IP Address:10.0.0.7"), "{text}");
            assert!(text.contains("email:ops@example.com"), "{text}");
            assert!(text.contains("TLS Web Server Authentication, TLS Web Client Authentication"), "{text}");
            assert!(text.contains("Subject Key Identifier") && text.contains("Authority Key Identifier"), "{text}");
            assert!(text.contains("Digital Signature") && !text.contains("Key Encipherment"), "{text}");
            assert!(leaf.serial_hex.len() == 40 && leaf.fingerprint_sha256.len() == 64);
            assert!(leaf.private_key_pem.as_deref().is_some_and(|k| k.contains("PRIVATE KEY")));
            assert!((leaf.not_after - leaf.not_before).num_seconds() == 3660, "lifetime plus the backdating");
        }
    }

    #[test]
    fn rsa_leaves_also_allow_key_encipherment() {
        let ca = LocalCa::generate("certctl test CA", KeyAlgorithm::EcdsaP256).unwrap();
        let leaf = ca.issue_with_new_key(&request(&["rsa.example.com"]), KeyAlgorithm::Rsa2048).unwrap();
        let (ok, text) = openssl_verify(ca.cert_pem(), &leaf.chain_pem);
        assert!(ok && text.contains("Key Encipherment"), "{text}");
        assert_eq!(leaf.key_algorithm.family_and_size(), ("RSA", 2048));
    }

    #[test]
    fn a_ca_reloaded_from_pem_keeps_signing_for_the_same_root() {
        let ca = LocalCa::generate("certctl test CA", KeyAlgorithm::EcdsaP256).unwrap();
        let again = LocalCa::from_pem(ca.cert_pem(), &ca.key_pem(), "").unwrap();
        let leaf = again.issue_with_new_key(&request(&["again.example.com"]), KeyAlgorithm::EcdsaP256).unwrap();
        assert!(openssl_verify(ca.cert_pem(), &leaf.chain_pem).0);
    }

    #[test]
    fn unusable_cas_are_refused_with_the_reason() {
        let ca = LocalCa::generate("certctl test CA", KeyAlgorithm::EcdsaP256).unwrap();
        let other = LocalCa::generate("other", KeyAlgorithm::EcdsaP256).unwrap();
        let err = LocalCa::from_pem(ca.cert_pem(), &other.key_pem(), "").unwrap_err();
        assert!(err.to_string().contains("does not belong"), "{err}");
        let leaf = ca.issue_with_new_key(&request(&["leaf.example.com"]), KeyAlgorithm::EcdsaP256).unwrap();
        let leaf_cert = leaf.chain_pem.split_inclusive("-----END CERTIFICATE-----\n").next().unwrap();
        let err = LocalCa::from_pem(leaf_cert, leaf.private_key_pem.as_deref().unwrap(), "").unwrap_err();
        assert!(err.to_string().contains("not a CA"), "{err}");
        assert!(ca.issue_with_new_key(&request(&["x.example.com"]), KeyAlgorithm::EcdsaP256).is_ok());
        let mut bad = request(&["x.example.com"]);
        bad.ekus = vec!["everything".into()];
        assert!(matches!(ca.issue_with_new_key(&bad, KeyAlgorithm::EcdsaP256), Err(CaError::BadRequest(_))));
    }
}
