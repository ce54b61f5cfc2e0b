//! The fakes' throw-away certificate authority (made with rcgen): one self-signed CA per fake,
//! which signs the fake's HTTPS server certificate (SAN 127.0.0.1), a client certificate for
//! mutual TLS, and the leaves for the CSRs the connectors send. A leaf carries the CSR's public
//! key and names, and is issued by the CA, so `leaf, CA` is a chain the connectors' checks
//! accept (actors/src/crypto/remote_leaf.rs). A leaf's serial is chosen when the order comes in
//! (GlobalSign names it in the submission's answer), and its names come from the CSR, or from the
//! request where the vendor takes only the key from the CSR (GlobalSign, Entrust, step-ca).

use std::net::IpAddr;

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// A CA with its key, and the certificates it made for the fake's own TLS.
pub(super) struct Authority {
    issuer: Issuer<'static, KeyPair>,
    ca_common_name: String,
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    server_cert_der: CertificateDer<'static>,
    server_key_der: Vec<u8>,
    /// The client certificate (PEM) for mutual TLS.
    pub client_cert_pem: String,
    /// Its key, PKCS#8 PEM.
    pub client_key_pem: String,
}

/// A leaf the CA signed.
#[derive(Clone, Debug)]
pub(super) struct Leaf {
    pub pem: String,
    pub der: Vec<u8>,
    /// The serial number's big-endian bytes.
    pub serial: Vec<u8>,
    /// When it was signed, and its validity, in Unix seconds.
    pub issued_at: i64,
    pub not_before: i64,
    pub not_after: i64,
}

/// What a leaf says when the request decides rather than the CSR (GlobalSign, Entrust, step-ca).
#[derive(Clone, Debug)]
pub(super) struct Subject {
    /// Empty: no subject common name.
    pub common_name: String,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    /// Dotted OIDs; empty: serverAuth.
    pub extended_key_usages: Vec<String>,
}

impl Leaf {
    /// The serial as DigiCert, Sectigo and GlobalSign write it: upper-case hex, no separators.
    pub fn serial_hex(&self) -> String {
        serial_hex(&self.serial)
    }

    /// The serial as Vault writes it: lower-case hex pairs separated by colons.
    pub fn serial_colons(&self) -> String {
        self.serial.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
    }

    /// The serial as step-ca writes it: decimal.
    pub fn serial_decimal(&self) -> String {
        decimal(&self.serial)
    }
}

impl Authority {
    /// A fresh CA named after `name`, and the fake's server and client certificates. Test set-up:
    /// a failure here is a bug in the fake, so it panics.
    pub fn generate(name: &str) -> Authority {
        let ca_key = KeyPair::generate().expect("generating the fake CA's key");
        let ca_common_name = format!("certctl fake {name} CA");
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = common_name(&ca_common_name);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        set_validity(&mut ca_params, Duration::days(3650));
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-signing the fake CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().expect("generating the fake's server key");
        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("server names");
        server_params.distinguished_name = common_name(&format!("certctl fake {name} server"));
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        set_validity(&mut server_params, Duration::days(365));
        let server_cert = server_params.signed_by(&server_key, &issuer).expect("signing the fake's server certificate");

        let client_key = KeyPair::generate().expect("generating the fake's client key");
        let mut client_params = CertificateParams::default();
        client_params.distinguished_name = common_name("certctl test client");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        set_validity(&mut client_params, Duration::days(365));
        let client_cert = client_params.signed_by(&client_key, &issuer).expect("signing the fake's client certificate");

        Authority {
            issuer,
            ca_common_name,
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            server_cert_der: server_cert.der().clone(),
            server_key_der: server_key.serialize_der(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA's subject common name (the issuer of every leaf).
    pub fn ca_common_name(&self) -> &str {
        &self.ca_common_name
    }

    /// The CA certificate, DER (the root of trust for client certificates).
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// The server's chain (server certificate, then the CA) and key, for rustls.
    pub fn server_identity(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone()));
        (vec![self.server_cert_der.clone(), self.ca_der.clone()], key)
    }

    /// Signs a leaf with `serial` for `csr_pem`'s key, valid for `validity_secs` from now, named
    /// as the CSR says or, given a `subject`, as that says (the CSR's signature was checked by
    /// [`read_csr`] when the order came in; it is checked again here).
    pub fn sign(
        &self,
        csr_pem: &str,
        validity_secs: u64,
        serial: &[u8],
        subject: Option<&Subject>,
    ) -> Result<Leaf, String> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| format!("the CSR: {e}"))?;
        let params = &mut csr.params;
        params.serial_number = Some(SerialNumber::from_slice(serial));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if let Some(subject) = subject {
            params.distinguished_name = if subject.common_name.is_empty() {
                DistinguishedName::new()
            } else {
                common_name(&subject.common_name)
            };
            params.subject_alt_names = Vec::new();
            for name in &subject.dns_names {
                let dns = Ia5String::try_from(name.as_str()).map_err(|e| format!("the DNS name {name:?}: {e}"))?;
                params.subject_alt_names.push(SanType::DnsName(dns));
            }
            params.subject_alt_names.extend(subject.ip_addresses.iter().map(|ip| SanType::IpAddress(*ip)));
            if !subject.extended_key_usages.is_empty() {
                params.extended_key_usages =
                    subject.extended_key_usages.iter().map(|oid| key_usage(oid)).collect::<Result<_, _>>()?;
            }
        }
        params.use_authority_key_identifier_extension = true;
        let validity = Duration::seconds(i64::try_from(validity_secs).unwrap_or(i64::MAX / 2));
        set_validity(params, validity);
        let (not_before, not_after) = (params.not_before.unix_timestamp(), params.not_after.unix_timestamp());
        let cert = csr.signed_by(&self.issuer).map_err(|e| format!("signing the leaf: {e}"))?;
        let issued_at = OffsetDateTime::now_utc().unix_timestamp();
        Ok(Leaf {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            serial: serial.to_vec(),
            issued_at,
            not_before,
            not_after,
        })
    }
}

/// What a fake reads from a CSR when the order comes in.
pub(super) struct CsrSummary {
    /// The subject's common name, empty when it has none.
    pub common_name: String,
    /// The DNS and IP names of its subjectAltName request.
    pub names: Vec<String>,
}

/// Parses `csr_pem` and checks its signature (what a CA does before it accepts an order).
pub(super) fn read_csr(csr_pem: &str) -> Result<CsrSummary, String> {
    let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| format!("the CSR is not valid: {e}"))?;
    let common_name = match csr.params.distinguished_name.get(&DnType::CommonName) {
        Some(DnValue::Utf8String(s)) => s.clone(),
        Some(DnValue::PrintableString(s)) => s.as_str().to_string(),
        Some(DnValue::Ia5String(s)) => s.as_str().to_string(),
        _ => String::new(),
    };
    let names = csr
        .params
        .subject_alt_names
        .iter()
        .filter_map(|san| match san {
            SanType::DnsName(name) => Some(name.as_str().to_string()),
            SanType::IpAddress(ip) => Some(ip.to_string()),
            _ => None,
        })
        .collect();
    Ok(CsrSummary { common_name, names })
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

/// Valid from a minute ago (clock skew) for `validity`.
fn set_validity(params: &mut CertificateParams, validity: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(1);
    params.not_after = now.saturating_add(validity);
}

/// An extended key usage from its dotted OID.
fn key_usage(oid: &str) -> Result<ExtendedKeyUsagePurpose, String> {
    Ok(match oid {
        "1.3.6.1.5.5.7.3.1" => ExtendedKeyUsagePurpose::ServerAuth,
        "1.3.6.1.5.5.7.3.2" => ExtendedKeyUsagePurpose::ClientAuth,
        other => ExtendedKeyUsagePurpose::Other(
            other.split('.').map(str::parse).collect::<Result<_, _>>().map_err(|_| format!("not an OID: {other:?}"))?,
        ),
    })
}

/// Upper-case hex, no separators.
pub(super) fn serial_hex(serial: &[u8]) -> String {
    serial.iter().map(|b| format!("{b:02X}")).collect()
}

/// A big-endian unsigned integer in decimal, of any length (serials may be up to 20 bytes, more
/// than any machine integer holds).
pub(super) fn decimal(big_endian: &[u8]) -> String {
    // Little-endian decimal digits, multiplied by 256 and added to, one byte at a time.
    let mut digits: Vec<u32> = vec![0];
    for &byte in big_endian {
        let mut carry = u32::from(byte);
        for digit in &mut digits {
            let value = *digit * 256 + carry;
            *digit = value % 10;
            carry = value / 10;
        }
        while carry > 0 {
            digits.push(carry % 10);
            carry /= 10;
        }
    }
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    digits.iter().rev().map(|d| char::from_digit(*d, 10).unwrap_or('0')).collect()
}

/// DER as a PEM block with `label` (`CERTIFICATE REQUEST` for the CSRs that come in as base64 DER).
pub(super) fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).filter_map(|line| std::str::from_utf8(line).ok()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// 16 random bytes, positive and without a leading zero byte (a minimal DER INTEGER).
pub(super) fn random_serial() -> Vec<u8> {
    let mut serial: [u8; 16] = rand::random();
    serial[0] = (serial[0] & 0x7f).max(1);
    serial.to_vec()
}
