//! Certificate signing requests from agents: parsed, their signature verified, and checked
//! against the certificate they are for. The CSR only supplies the public key: the names, key
//! usages and lifetime of the issued leaf come from the managed certificate and its profile.
//!
//! Callers run this on a blocking thread (signature verification is public-key crypto).

use std::net::IpAddr;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use super::key_algorithm::{permits, KeyAlgorithm};

/// Signature algorithms refused outright: SHA-1 and MD5 based.
const WEAK_SIGNATURES: [(&str, &str); 5] = [
    ("1.2.840.113549.1.1.4", "md5WithRSAEncryption"),
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1"),
    ("1.2.840.10040.4.3", "dsa-with-sha1"),
    ("1.3.14.3.2.29", "sha1WithRSASignature"),
];

/// A CSR whose signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCsr {
    /// The DER SubjectPublicKeyInfo the leaf is issued for.
    pub spki_der: Vec<u8>,
    pub key_algorithm: KeyAlgorithm,
    /// The subject's common name, when it has one (informational: never copied into the leaf).
    pub common_name: Option<String>,
    /// DNS names, IP addresses and e-mail addresses it asks for, as text.
    pub names: Vec<String>,
}

/// The one PEM block of `text`: its label and DER. Exactly one block, nothing but white space
/// around it, and an END line naming the BEGIN line's label: a second CSR, or text after the
/// first, is refused rather than ignored (what was checked must be what is stored).
fn single_pem_block(text: &str) -> Result<(String, Vec<u8>), String> {
    const NOT_PEM: &str = "csr_pem is not PEM (expected one -----BEGIN CERTIFICATE REQUEST----- block)";
    let trimmed = text.trim();
    let rest = trimmed.strip_prefix("-----BEGIN ").ok_or(NOT_PEM)?;
    let (label, rest) = rest.split_once("-----").ok_or(NOT_PEM)?;
    let end_line = format!("-----END {label}-----");
    let body = rest.strip_suffix(end_line.as_str()).ok_or_else(|| {
        if trimmed.matches("-----BEGIN ").count() > 1 {
            "csr_pem must hold exactly one PEM block; it holds several".to_string()
        } else {
            format!("csr_pem must end with {end_line} and nothing after it")
        }
    })?;
    if body.contains("-----") {
        return Err("csr_pem must hold exactly one PEM block; it holds several".into());
    }
    let base64: String = body.split_whitespace().collect();
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(base64.as_bytes())
        .map_err(|_| "csr_pem's PEM block is not valid base64".to_string())?;
    Ok((label.to_string(), der))
}

/// Parses a PEM CSR, checks its key type, and verifies its self-signature; the error is a
/// sentence for the client.
pub fn verify_csr(pem: &str) -> Result<VerifiedCsr, String> {
    let (label, der) = single_pem_block(pem)?;
    if label != "CERTIFICATE REQUEST" && label != "NEW CERTIFICATE REQUEST" {
        return Err(format!("csr_pem holds a {label} block, not a CERTIFICATE REQUEST"));
    }
    let (rest, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|_| "csr_pem is not a PKCS#10 certificate request (its DER does not parse)".to_string())?;
    if !rest.is_empty() {
        return Err("the CSR has trailing bytes after its DER structure".into());
    }
    // The key type first: a key this server does not issue for (RSA-1024, P-521, secp256k1)
    // deserves that answer, not a signature failure from a verifier that does not know the curve.
    let key_algorithm = key_algorithm_of(&csr.certification_request_info.subject_pki)?;
    let signature_oid = csr.signature_algorithm.algorithm.to_id_string();
    if let Some((_, name)) = WEAK_SIGNATURES.iter().find(|(oid, _)| *oid == signature_oid) {
        return Err(format!(
            "the CSR is signed with {name}; SHA-1 and MD5 signatures are refused, use SHA-256 or better"
        ));
    }
    csr.verify_signature().map_err(|_| "the CSR's signature does not verify against its public key".to_string())?;
    let info = &csr.certification_request_info;
    let common_name = info.subject.iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_owned);
    let mut names = Vec::new();
    for extension in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = extension {
            for name in &san.general_names {
                names.push(match name {
                    GeneralName::DNSName(dns) => dns.to_string(),
                    GeneralName::RFC822Name(email) => email.to_string(),
                    GeneralName::IPAddress(bytes) => ip_from_bytes(bytes)
                        .ok_or_else(|| "the CSR has an IP address SAN of the wrong length".to_string())?
                        .to_string(),
                    other => return Err(format!("the CSR asks for a SAN type that is not issued here: {other}")),
                });
            }
        }
    }
    Ok(VerifiedCsr { spki_der: info.subject_pki.raw.to_vec(), key_algorithm, common_name, names })
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

fn key_algorithm_of(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Result<KeyAlgorithm, String> {
    let algorithm = spki.algorithm.algorithm.to_id_string();
    match algorithm.as_str() {
        "1.2.840.113549.1.1.1" => {
            let bits = spki.parsed().map(|k| k.key_size()).unwrap_or(0);
            match bits {
                2048 => Ok(KeyAlgorithm::Rsa2048),
                3072 => Ok(KeyAlgorithm::Rsa3072),
                4096 => Ok(KeyAlgorithm::Rsa4096),
                other => Err(format!("RSA keys must be 2048, 3072 or 4096 bits; the CSR's is {other}")),
            }
        }
        "1.2.840.10045.2.1" => {
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => Ok(KeyAlgorithm::EcdsaP256),
                Some("1.3.132.0.34") => Ok(KeyAlgorithm::EcdsaP384),
                _ => Err("ECDSA keys must be on P-256 or P-384".into()),
            }
        }
        "1.3.101.112" => Ok(KeyAlgorithm::Ed25519),
        other => Err(format!("the CSR's key type ({other}) is not supported; use ECDSA, RSA or Ed25519")),
    }
}

impl VerifiedCsr {
    /// Checks the CSR against the certificate it is for: its key type must be one the profile
    /// allows (`allowed` empty: any), and every SAN it asks for must be one of the certificate's
    /// (its common name or SANs; DNS names compare case-insensitively). The CSR's subject is not
    /// checked: the issued leaf's subject and names come from the certificate, never the CSR.
    pub fn check_against(&self, common_name: &str, sans: &[String], allowed: &[(String, i32)]) -> Result<(), String> {
        if !allowed.is_empty() && !permits(allowed, self.key_algorithm) {
            let list = allowed.iter().map(|(a, min)| format!("{a} ≥ {min}")).collect::<Vec<_>>().join(", ");
            return Err(format!(
                "the CSR's key ({}) is not allowed by the certificate's profile ({list})",
                self.key_algorithm
            ));
        }
        let known = |name: &str| name.eq_ignore_ascii_case(common_name) || sans.iter().any(|s| same_name(s, name));
        if let Some(extra) = self.names.iter().find(|n| !known(n)) {
            return Err(format!("the CSR asks for {extra:?}, which is not a name of this certificate"));
        }
        Ok(())
    }
}

fn same_name(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.eq_ignore_ascii_case(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    fn csr_for(names: &[&str], key: &KeyPair) -> String {
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.serialize_request(key).unwrap().pem().unwrap()
    }

    #[test]
    fn a_csr_verifies_and_yields_its_key_and_names() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = verify_csr(&csr_for(&["api.example.com", "10.0.0.1"], &key)).unwrap();
        assert_eq!(csr.key_algorithm, KeyAlgorithm::EcdsaP256);
        assert_eq!(csr.names, vec!["api.example.com".to_string(), "10.0.0.1".to_string()]);
        assert_eq!(csr.spki_der, rcgen::PublicKeyData::subject_public_key_info(&key));
        let sans = vec!["API.example.com".to_string(), "10.0.0.1".to_string()];
        assert_eq!(csr.check_against("api.example.com", &sans, &[]), Ok(()));
        assert!(csr.check_against("api.example.com", &sans[..1], &[]).unwrap_err().contains("10.0.0.1"));
        assert!(csr.check_against("x", &sans, &[("RSA".into(), 2048)]).unwrap_err().contains("not allowed"));
    }

    #[test]
    fn a_tampered_csr_is_refused() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let pem = csr_for(&["a.example.com"], &key);
        let der = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap().1.contents;
        // Flip a byte of the requested name: the signature no longer covers what is there.
        let at = der.windows(13).position(|w| w == b"a.example.com").unwrap();
        let mut tampered = der.clone();
        tampered[at] = b'b';
        use base64::Engine as _;
        let pem = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            base64::engine::general_purpose::STANDARD.encode(&tampered)
        );
        assert!(verify_csr(&pem).unwrap_err().contains("signature"));
        assert!(verify_csr("not a csr").is_err());
    }

    #[test]
    fn one_pem_block_and_nothing_else() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let (one, two) = (csr_for(&["a.example.com"], &key), csr_for(&["b.example.com"], &key));
        assert!(verify_csr(&format!("\n{one}\n")).is_ok(), "white space around it is fine");
        assert!(verify_csr(&format!("{one}{two}")).unwrap_err().contains("exactly one"));
        assert!(verify_csr(&format!("{one}garbage")).unwrap_err().contains("nothing after"));
        let mismatched = one.replace("-----END CERTIFICATE REQUEST-----", "-----END CERTIFICATE-----");
        assert!(verify_csr(&mismatched).is_err());
        let not_der = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
        let error = verify_csr(not_der).unwrap_err();
        assert!(error.contains("PKCS#10") && !error.contains("Error"), "{error}");
    }

    #[test]
    fn an_unsupported_key_type_is_named_before_the_signature() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
        let error = verify_csr(&csr_for(&["a.example.com"], &key)).unwrap_err();
        assert!(error.contains("P-256 or P-384"), "{error}");
    }
}
