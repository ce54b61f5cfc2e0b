//! dns-01 records written by RFC 2136 dynamic update, signed with TSIG (RFC 8945), straight to the
//! zone's authoritative server (BIND, Knot, PowerDNS…): no hook script needed.
//!
//! Config: `dns_update_server` (`host:port` of the primary, e.g. `10.0.0.53:53`), `dns_zone` (the
//! zone the names are in, e.g. `example.com`), `tsig_key_name`, `tsig_secret` (base64, as
//! `tsig-keygen` prints it) and `tsig_algorithm` (`hmac-sha256`, the default, `hmac-sha384` or
//! `hmac-sha512`).

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hickory_client::client::{Client, ClientHandle};
use hickory_client::proto::dnssec::rdata::tsig::TsigAlgorithm;
use hickory_client::proto::dnssec::tsig::TSigner;
use hickory_client::proto::op::ResponseCode;
use hickory_client::proto::rr::rdata::TXT;
use hickory_client::proto::rr::{Name, RData, Record};
use hickory_client::proto::runtime::TokioRuntimeProvider;
use hickory_client::proto::udp::UdpClientStream;

use crate::issuers::connectors::ConfigReader;
use crate::issuers::{ErrorClass, IssueFailure};

/// TTL of the TXT records: short, they live minutes.
const RECORD_TTL: u32 = 60;
/// How far apart the clocks of certctl and the DNS server may be for a TSIG signature.
const TSIG_FUDGE: u16 = 300;
/// Longest an update may wait for its answer.
const UPDATE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how records are updated.
#[derive(Clone)]
pub struct DynamicUpdate {
    server: SocketAddr,
    zone: Name,
    key_name: Name,
    algorithm: TsigAlgorithm,
    secret: Vec<u8>,
}

impl std::fmt::Debug for DynamicUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicUpdate").field("server", &self.server).field("zone", &self.zone).finish_non_exhaustive()
    }
}

impl DynamicUpdate {
    /// The settings, when `dns_update_server` is set.
    pub fn from_config(config: &ConfigReader<'_>) -> Result<Option<DynamicUpdate>, IssueFailure> {
        let Some(server) = config.text("dns_update_server")? else { return Ok(None) };
        let server = SocketAddr::from_str(&server)
            .map_err(|_| config.error("dns_update_server must be an IP address and port, e.g. 10.0.0.53:53"))?;
        let name = |field: &str, what: &str| -> Result<Name, IssueFailure> {
            let text = config.required(field, what)?;
            let fqdn = if text.ends_with('.') { text } else { format!("{text}.") };
            Name::from_str(&fqdn).map_err(|e| config.error(format!("{field} is not a DNS name: {e}")))
        };
        let algorithm = match config.text("tsig_algorithm")?.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("hmac-sha256") => TsigAlgorithm::HmacSha256,
            Some("hmac-sha384") => TsigAlgorithm::HmacSha384,
            Some("hmac-sha512") => TsigAlgorithm::HmacSha512,
            Some(other) => {
                return Err(config
                    .error(format!("tsig_algorithm {other:?} is not one of hmac-sha256, hmac-sha384, hmac-sha512")))
            }
        };
        let secret = base64::engine::general_purpose::STANDARD
            .decode(config.required("tsig_secret", "the TSIG key, base64")?.trim())
            .map_err(|_| config.error("tsig_secret must be base64 (as tsig-keygen prints it)"))?;
        Ok(Some(DynamicUpdate {
            server,
            zone: name("dns_zone", "the zone the certificate's names are in")?,
            key_name: name("tsig_key_name", "the TSIG key's name")?,
            algorithm,
            secret,
        }))
    }

    /// Adds (or, with `add` false, removes) the TXT value at `fqdn`; other values there stay (a
    /// wildcard and its base name share one name).
    pub async fn set(&self, fqdn: &str, value: &str, add: bool) -> Result<(), IssueFailure> {
        let what = if add { "adding" } else { "removing" };
        let failed = |class: ErrorClass, why: String| {
            IssueFailure::new(class, format!("RFC 2136 update {what} TXT {fqdn} at {}: {why}", self.server))
        };
        let owner = Name::from_str(&format!("{}.", fqdn.trim_end_matches('.')))
            .map_err(|e| failed(ErrorClass::Validation, format!("not a DNS name: {e}")))?;
        let signer = TSigner::new(self.secret.clone(), self.algorithm.clone(), self.key_name.clone(), TSIG_FUDGE)
            .map_err(|e| failed(ErrorClass::Validation, format!("the TSIG key: {e}")))?;
        let stream = UdpClientStream::builder(self.server, TokioRuntimeProvider::new())
            .with_timeout(Some(UPDATE_TIMEOUT))
            .with_signer(Some(Arc::new(signer)))
            .build();
        let (mut client, background) =
            Client::connect(stream).await.map_err(|e| failed(ErrorClass::Network, e.to_string()))?;
        let exchange = tokio::spawn(background);
        let ttl = if add { RECORD_TTL } else { 0 };
        let record = Record::from_rdata(owner, ttl, RData::TXT(TXT::new(vec![value.to_owned()])));
        let answer = if add {
            client.append(record, self.zone.clone(), false).await
        } else {
            client.delete_by_rdata(record, self.zone.clone()).await
        };
        exchange.abort();
        // A refusal comes back as an answer with a code; a bad signature as an error.
        match answer {
            Ok(response) if response.response_code() == ResponseCode::NoError => Ok(()),
            Ok(response) => Err(failed(
                ErrorClass::Upstream4xx,
                format!(
                    "the server answered {} (check the zone, the key and its update policy)",
                    response.response_code()
                ),
            )),
            Err(e) => Err(failed(ErrorClass::Upstream5xx, format!("{e} (a wrong TSIG key shows this way too)"))),
        }
    }
}
