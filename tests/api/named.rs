//! An authoritative DNS server for the tests: BIND's `named` (Debian package `bind9`) on a loopback
//! port, primary for the zone `test.` (every name resolves to 127.0.0.1), accepting RFC 2136
//! updates of TXT records signed with a TSIG key made here. Pebble can resolve from it directly.
//! Killed when dropped.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::helpers::scratch_dir;
use crate::pebble::free_port;

/// A running `named`.
pub struct Named {
    /// `127.0.0.1:port`, UDP and TCP.
    pub address: String,
    pub key_name: &'static str,
    /// The TSIG secret, base64.
    pub secret: String,
    child: Child,
    dir: PathBuf,
}

impl Named {
    pub fn start() -> Named {
        let dir = scratch_dir("named");
        let port = free_port();
        let mut secret = [0u8; 32];
        aws_lc_rs::rand::fill(&mut secret).unwrap();
        let secret = base64::engine::general_purpose::STANDARD.encode(secret);
        let key_name = "certctl-test";
        let d = dir.display();
        std::fs::write(
            dir.join("named.conf"),
            format!(
                "key \"{key_name}\" {{ algorithm hmac-sha256; secret \"{secret}\"; }};\n\
                 options {{ directory \"{d}\"; pid-file \"{d}/named.pid\"; session-keyfile \"{d}/session.key\";\n\
                   managed-keys-directory \"{d}\"; listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};\n\
                   recursion no; allow-query {{ 127.0.0.1; }}; allow-transfer {{ none; }}; notify no;\n\
                   dnssec-validation no; }};\n\
                 controls {{ }};\n\
                 zone \"test\" {{ type primary; file \"{d}/test.zone\"; journal \"{d}/test.zone.jnl\";\n\
                   update-policy {{ grant {key_name} zonesub TXT; }}; }};\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("test.zone"),
            "$TTL 60\n@ IN SOA ns1.test. hostmaster.test. ( 1 60 60 600 60 )\n  IN NS ns1.test.\n\
             ns1 IN A 127.0.0.1\n* IN A 127.0.0.1\n",
        )
        .unwrap();
        let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
        let child = Command::new("/usr/sbin/named")
            .args(["-g", "-c"])
            .arg(dir.join("named.conf"))
            .stdin(Stdio::null())
            .stdout(log("named.log"))
            .stderr(log("named.err"))
            .spawn()
            .expect("starting /usr/sbin/named (Debian package bind9; .ci/run installs it)");
        let named = Named { address: format!("127.0.0.1:{port}"), key_name, secret, child, dir };
        let started = Instant::now();
        while TcpStream::connect(&named.address).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "named did not start: {}", named.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
        named
    }

    /// named's log, for failure messages.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.join("named.err")).unwrap_or_default()
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
