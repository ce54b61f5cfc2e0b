//! A proxy between a test server and the test cluster that can go silent: while frozen it
//! passes no byte either way and completes no new connection, yet closes nothing. That is a
//! network path whose state a NAT or firewall dropped: no socket error reveals it, and TCP
//! keepalives are still answered (by the proxy's end), so only an application-level check
//! notices.

use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};
use tokio::sync::watch;

use crate::helpers::cluster;

pub struct FreezingProxy {
    port: u16,
    frozen: watch::Sender<bool>,
}

impl FreezingProxy {
    /// Listens on a free loopback port and forwards to the test cluster's Unix socket.
    pub async fn start() -> FreezingProxy {
        let socket = cluster_socket();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (frozen, _) = watch::channel(false);
        let gate = frozen.subscribe();
        // The task ends with the test's runtime.
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (socket, gate) = (socket.clone(), gate.clone());
                tokio::spawn(async move {
                    thawed(&mut gate.clone()).await;
                    let Ok(upstream) = UnixStream::connect(&socket).await else { return };
                    let (client_read, client_write) = client.into_split();
                    let (upstream_read, upstream_write) = upstream.into_split();
                    tokio::spawn(pump(client_read, upstream_write, gate.clone()));
                    pump(upstream_read, client_write, gate).await;
                });
            }
        });
        FreezingProxy { port, frozen }
    }

    /// A server's database URL for `db_name` through this proxy.
    pub fn url_for(&self, db_name: &str) -> String {
        let url = cluster().url_for(db_name);
        let mut words: Vec<String> =
            url.split(' ').filter(|w| !w.starts_with("host=") && !w.starts_with("port=")).map(str::to_string).collect();
        words.push("host=127.0.0.1".into());
        words.push(format!("port={}", self.port));
        words.join(" ")
    }

    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }
}

/// The Unix socket the test cluster listens on.
fn cluster_socket() -> PathBuf {
    let config = cluster().config_for("postgres");
    let port = config.get_ports().first().copied().unwrap_or(5432);
    match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Unix(dir) => dir.join(format!(".s.PGSQL.{port}")),
        tokio_postgres::config::Host::Tcp(host) => panic!("the test cluster listens on TCP ({host}), not a socket"),
    }
}

/// Returns once the proxy is not frozen.
async fn thawed(gate: &mut watch::Receiver<bool>) {
    // An error means the proxy is gone: nothing is held back any more.
    let _ = gate.wait_for(|frozen| !frozen).await;
}

/// Copies one direction until either end closes, holding bytes back while frozen.
async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, mut gate: watch::Receiver<bool>) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        thawed(&mut gate).await;
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Bytes read just before a freeze wait for the thaw like the rest.
        thawed(&mut gate).await;
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
