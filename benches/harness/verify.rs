//! Issued chains checked with `openssl verify` against a CA, many files per call.

use std::path::Path;

/// How many of `chains` (PEM, leaf first) `openssl verify` accepts under `ca_pem`; the files live
/// in `dir` while it runs.
pub fn openssl_verified(dir: &Path, ca_pem: &str, chains: &[String]) -> i64 {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_pem).unwrap();
    let mut files = Vec::with_capacity(chains.len());
    for (i, chain) in chains.iter().enumerate() {
        let path = dir.join(format!("{i}.pem"));
        std::fs::write(&path, chain).unwrap();
        files.push(path);
    }
    let mut ok = 0i64;
    for chunk in files.chunks(500) {
        let output = std::process::Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(dir.join("ca.pem"))
            .args(chunk)
            .output()
            .expect("running openssl");
        ok += String::from_utf8_lossy(&output.stdout).lines().filter(|l| l.ends_with(": OK")).count() as i64;
    }
    let _ = std::fs::remove_dir_all(dir);
    ok
}
