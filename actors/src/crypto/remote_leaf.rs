//! Leaves signed by a remote CA: the CSR the server sends when it generates the key itself, and
//! the check of what comes back (the leaf carries the CSR's key, and each certificate of the chain
//! is signed by the next) before anything is written.
//!
//! Callers run both on a blocking thread (key generation and signature checks).

use rcgen::{CertificateParams, DistinguishedName, DnType};
use sha2::{Digest, Sha256};
use x509_parser::pem::Pem;

use super::csr::verify_csr;
use super::key_algorithm::KeyAlgorithm;
use super::local_ca::{hex, IssuedLeaf};

/// A CSR and the key it was made with.
pub struct CsrWithKey {
    pub csr_pem: String,
    /// PKCS#8 PEM.
    pub key_pem: String,
}

/// Generates a key of `algorithm` and a CSR for `common_name` and `sans` (the names a remote CA
/// reads from the CSR; their order is the certificate's).
pub fn make_csr(common_name: &str, sans: &[String], algorithm: KeyAlgorithm) -> Result<CsrWithKey, String> {
    let key = algorithm.generate().map_err(|e| format!("generating a {algorithm} key: {e}"))?;
    let mut params =
        CertificateParams::new(sans.to_vec()).map_err(|e| format!("the certificate's names do not fit a CSR: {e}"))?;
    let mut dn = DistinguishedName::new();
    if !common_name.is_empty() {
        dn.push(DnType::CommonName, common_name);
    }
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key).map_err(|e| format!("making the CSR: {e}"))?;
    let csr_pem = csr.pem().map_err(|e| format!("encoding the CSR: {e}"))?;
    Ok(CsrWithKey { csr_pem, key_pem: key.serialize_pem() })
}

/// Checks a chain a remote CA returned for `csr_pem` and describes its leaf: the leaf's public
/// key must be the CSR's, the chain must hold the issuing CA, and every certificate must be
/// signed by the one after it. CAs return bundles in any order (DigiCert's `pem_all` puts the
/// root first): the chain is put in order from the leaf (the certificate that issued none of the
/// others), and returned re-encoded, leaf first, nothing but the certificates.
pub fn check_issued_chain(chain_pem: &str, csr_pem: &str) -> Result<IssuedLeaf, String> {
    let pems: Vec<Pem> = Pem::iter_from_buffer(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the CA's answer is not a PEM certificate chain: {e}"))?;
    let pems: Vec<Pem> = pems.into_iter().filter(|p| p.label == "CERTIFICATE").collect();
    let parsed = pems
        .iter()
        .map(|p| p.parse_x509().map_err(|e| format!("a certificate the CA returned does not parse: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let order = chain_order(&parsed);
    let pems: Vec<&Pem> = order.iter().map(|&i| &pems[i]).collect();
    let certs: Vec<_> = order.iter().map(|&i| parsed[i].clone()).collect();
    let Some(leaf) = certs.first() else {
        return Err("the CA's answer holds no certificate".into());
    };
    if certs.len() < 2 {
        return Err("the CA returned the certificate without the CA certificate that issued it".into());
    }
    let csr = verify_csr(csr_pem).map_err(|e| format!("the order's CSR: {e}"))?;
    if leaf.public_key().raw != csr.spki_der.as_slice() {
        return Err("the certificate the CA returned is not for the CSR's public key".into());
    }
    for pair in certs.windows(2) {
        let (child, parent) = (&pair[0], &pair[1]);
        if child.issuer() != parent.subject() {
            return Err(format!(
                "the chain is out of order: {} is not issued by {}",
                child.subject(),
                parent.subject()
            ));
        }
        child
            .verify_signature(Some(parent.public_key()))
            .map_err(|_| format!("the signature on {} does not verify under {}", child.subject(), parent.subject()))?;
    }
    let to_chrono =
        |t: x509_parser::time::ASN1Time| chrono::DateTime::from_timestamp(t.timestamp(), 0).unwrap_or_default();
    let chain_pem: String = pems
        .iter()
        .map(|p| {
            use base64::Engine as _;
            let body = base64::engine::general_purpose::STANDARD.encode(&p.contents);
            let lines: Vec<&str> =
                body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
            format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
        })
        .collect();
    Ok(IssuedLeaf {
        chain_pem,
        serial_hex: hex(leaf.raw_serial()),
        not_before: to_chrono(leaf.validity().not_before),
        not_after: to_chrono(leaf.validity().not_after),
        fingerprint_sha256: hex(&Sha256::digest(&pems[0].contents)),
        private_key_pem: None,
        key_algorithm: csr.key_algorithm,
        renewal_window: None,
    })
}

/// The certificates' indices from the leaf up: the leaf issued none of the others; each next one
/// is the issuer of the previous (certificates that fit nowhere come last, and fail the check).
fn chain_order(certs: &[x509_parser::certificate::X509Certificate<'_>]) -> Vec<usize> {
    let issues_another = |i: usize| {
        certs
            .iter()
            .enumerate()
            .any(|(j, other)| j != i && other.issuer() == certs[i].subject() && other.issuer() != other.subject())
    };
    let Some(leaf) = (0..certs.len()).find(|&i| !issues_another(i)) else {
        return (0..certs.len()).collect();
    };
    let mut order = vec![leaf];
    while let Some(&last) = order.last() {
        let current = &certs[last];
        if current.issuer() == current.subject() {
            break;
        }
        match (0..certs.len()).find(|i| !order.contains(i) && certs[*i].subject() == current.issuer()) {
            Some(next) => order.push(next),
            None => break,
        }
    }
    let rest: Vec<usize> = (0..certs.len()).filter(|i| !order.contains(i)).collect();
    order.extend(rest);
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::local_ca::{LeafRequest, LocalCa};

    #[test]
    fn a_chain_for_the_csr_checks_and_another_key_does_not() {
        let ca = LocalCa::generate("test CA", KeyAlgorithm::EcdsaP256).unwrap();
        let names = vec!["a.example.test".to_string()];
        let csr = make_csr("a.example.test", &names, KeyAlgorithm::EcdsaP256).unwrap();
        let verified = verify_csr(&csr.csr_pem).unwrap();
        let spki = rcgen::SubjectPublicKeyInfo::from_der(&verified.spki_der).unwrap();
        let request = LeafRequest {
            common_name: "a.example.test".into(),
            sans: names.clone(),
            ekus: vec!["serverAuth".into()],
            lifetime: std::time::Duration::from_secs(3600),
        };
        let issued = ca.issue_for(&request, &spki, KeyAlgorithm::EcdsaP256).unwrap();
        let checked = check_issued_chain(&issued.chain_pem, &csr.csr_pem).unwrap();
        assert_eq!(checked.serial_hex, issued.serial_hex.trim_start_matches("00"));
        assert_eq!(checked.fingerprint_sha256, issued.fingerprint_sha256);

        let other = make_csr("a.example.test", &names, KeyAlgorithm::EcdsaP256).unwrap();
        let error = check_issued_chain(&issued.chain_pem, &other.csr_pem).unwrap_err();
        assert!(error.contains("not for the CSR's public key"), "{error}");

        let leaf_only: String = issued.chain_pem.split_inclusive("-----END CERTIFICATE-----\n").next().unwrap().into();
        let error = check_issued_chain(&leaf_only, &csr.csr_pem).unwrap_err();
        assert!(error.contains("without the CA certificate"), "{error}");

        let (leaf, ca) = issued.chain_pem.split_at(leaf_only.len());
        let reversed = check_issued_chain(&format!("{ca}{leaf}"), &csr.csr_pem).unwrap();
        assert_eq!(reversed.chain_pem, checked.chain_pem, "a bundle root-first is put in order");

        let stranger = LocalCa::generate("another CA", KeyAlgorithm::EcdsaP256).unwrap();
        let forged = format!("{leaf_only}{}", stranger.chain_pem());
        assert!(check_issued_chain(&forged, &csr.csr_pem).is_err());
    }
}
