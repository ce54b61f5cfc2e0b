//! The server under test: a real `certctl-server` process on a scratch data dir (embedded
//! PostgreSQL, TLS on), with every `CERTCTL_*` variable of the bench's own environment passed on
//! and overriding the scenario's settings; and the statistics of it and its PostgreSQL. Also the
//! reqwest HTTP/2 client trusting the server's certificate, `clients(n)` for load spread over
//! several connections, the `/health` ceiling (also over those clients: `ceiling_over`), admin
//! requests, a connection to the server's own database, and CPU and RSS from `/proc`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The admin key the bench server accepts.
pub const KEY: &str = "bench-admin-key-0123456789abcdef";

/// A running server; killed (SIGINT, then waited for) when dropped.
pub struct BenchServer {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
}

impl BenchServer {
    /// Starts the server with TLS on and waits until `/health` answers over HTTPS.
    pub async fn start(extra_env: &[(&str, &str)]) -> BenchServer {
        let data_dir = std::env::temp_dir().join(format!("certctl-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir).unwrap();
        std::fs::set_permissions(&data_dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_certctl-server"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CERTCTL_DATA_DIR", data_dir.join("data"))
            .env("CERTCTL_SERVER_PORT", port.to_string())
            .env("CERTCTL_API_KEYS_NAMED", format!("bench:{KEY}:admin"))
            .env("CERTCTL_LOG_LEVEL", "warn")
            .env("CERTCTL_DEMO_SEED", "true")
            .envs(extra_env.iter().copied())
            // CERTCTL_* variables in the bench's own environment win, so a run can try a setting
            // (`CERTCTL_DATABASE_MAX_CONNS=12 cargo bench …`) without editing the scenario.
            .envs(std::env::vars().filter(|(name, _)| name.starts_with("CERTCTL_")))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = command.spawn().expect("starting certctl-server");
        let base = format!("https://127.0.0.1:{port}");
        let cert_path = data_dir.join("data/tls/server.crt");
        let deadline = Instant::now() + Duration::from_secs(120);
        while !cert_path.exists() {
            assert!(Instant::now() < deadline, "the server never wrote its certificate");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let pem = std::fs::read(&cert_path).unwrap();
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .pool_max_idle_per_host(4096)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        loop {
            if let Ok(response) = client.get(format!("{base}/ready")).send().await {
                if response.status() == 200 {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "the server never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        BenchServer { child, base, data_dir: data_dir.join("data"), client }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// A connection to the server's own database, as its embedded cluster's superuser.
    pub async fn database(&self) -> tokio_postgres::Client {
        let mut config = tokio_postgres::Config::new();
        config.host_path(self.data_dir.join("run")).port(5432).user("certctl").dbname("certctl");
        let (client, connection) =
            config.connect(tokio_postgres::NoTls).await.expect("connecting to the bench database");
        tokio::spawn(connection);
        client
    }

    /// The machine's ceiling for this server: `GET /health` from 64 closed-loop callers for
    /// `duration`, printed. The body is read: a response dropped unread resets its HTTP/2 stream,
    /// and after 1,024 such resets the client's h2 library ends the connection itself
    /// (`too_many_internal_resets`), which once showed up as server errors.
    pub async fn ceiling(&self, duration: Duration) -> super::load::StreamResult {
        let (client, url) = (self.client.clone(), format!("{}/health", self.base));
        let health: super::load::RequestFn = std::sync::Arc::new(move |_| {
            let (client, url) = (client.clone(), url.clone());
            Box::pin(async move {
                match client.get(&url).send().await {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                }
            })
        });
        println!("measuring the ceiling: GET /health, 64 closed-loop callers, {} s", duration.as_secs());
        super::load::run_ceiling(health, 64, duration).await
    }

    /// `n` clients trusting the server's certificate, each with an HTTP/2 connection of its own, so
    /// the load spreads over the server's workers as a fleet's many connections would.
    pub fn clients(&self, n: usize) -> Vec<reqwest::Client> {
        let pem = std::fs::read(self.data_dir.join("tls/server.crt")).unwrap();
        (0..n)
            .map(|_| {
                reqwest::Client::builder()
                    .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap()
            })
            .collect()
    }

    /// The ceiling over `clients` (request `n` on client `n mod len`): `GET /health` from 64
    /// closed-loop callers for `duration`, printed.
    pub async fn ceiling_over(&self, clients: &[reqwest::Client], duration: Duration) -> super::load::StreamResult {
        let (clients, url) = (clients.to_vec(), format!("{}/health", self.base));
        let health: super::load::RequestFn = std::sync::Arc::new(move |n| {
            let (client, url) = (clients[n as usize % clients.len()].clone(), url.clone());
            Box::pin(async move {
                match client.get(&url).send().await {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                }
            })
        });
        println!("measuring the ceiling: GET /health, 64 closed-loop callers, {} s", duration.as_secs());
        super::load::run_ceiling(health, 64, duration).await
    }

    /// `POST` (admin key) `path` with a JSON body; the status and the JSON answer.
    pub async fn admin_post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let response =
            self.client.post(format!("{}{path}", self.base)).bearer_auth(KEY).json(body).send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// The embedded postmaster's pid.
    pub fn postmaster_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.data_dir.join("postgres/postmaster.pid")).ok()?.lines().next()?.trim().parse().ok()
    }

    /// CPU seconds used so far by the server and, separately, by PostgreSQL (postmaster and its
    /// children).
    pub fn cpu_seconds(&self) -> (f64, f64) {
        let server = process_cpu(self.pid());
        let postgres = self
            .postmaster_pid()
            .map(|pm| process_cpu(pm) + children_of(pm).into_iter().map(process_cpu).sum::<f64>())
            .unwrap_or(0.0);
        (server, postgres)
    }
}

/// A process's resident set size in MiB (0 when it cannot be read).
pub fn rss_mib(pid: i32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        // SAFETY: kill on the child we started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(self.data_dir.parent().unwrap_or(&self.data_dir));
    }
}

/// utime + stime of a process, in seconds.
pub fn process_cpu(pid: i32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based), so 11 and 12 here.
    let ticks: f64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<f64>().ok()).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

/// Direct children of `parent`.
fn children_of(parent: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| {
                s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
            }) == Some(parent)
        })
        .collect()
}
