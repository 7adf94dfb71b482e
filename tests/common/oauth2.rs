//! A loopback OAuth2 issuer for the IMAP tests (`tests/services/oauth2_server.py`): the
//! token endpoint ruaflow asks and the introspection endpoint Dovecot's oauth2 passdb
//! asks, one per test, stopped on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The script.
pub const SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/services/oauth2_server.py");
/// The one client the issuer knows.
pub const CLIENT_ID: &str = "ruaflow-test-client";
/// Its secret.
pub const CLIENT_SECRET: &str = "ruaflow-test-client-secret";
/// The refresh token it starts with.
pub const REFRESH_TOKEN: &str = "ruaflow-test-refresh-token";

/// One token request the issuer answered with a token.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Issued {
    pub grant: String,
    pub scope: String,
    pub lifetime: u64,
    pub token: String,
    pub refresh_used: Option<String>,
}

/// What the issuer has seen.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Seen {
    pub issued: Vec<Issued>,
    pub refused: Vec<serde_json::Value>,
    pub introspections: Introspections,
}

/// How many introspected tokens were active and inactive.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct Introspections {
    pub active: u64,
    pub inactive: u64,
}

/// The issuer process; killed on drop.
pub struct Issuer {
    child: Child,
    pub port: u16,
}

impl Issuer {
    /// Starts it (its port file in `dir`) and waits until it listens.
    pub fn start(dir: &Path) -> Issuer {
        let port_file = dir.join("oauth2.port");
        let child = Command::new("python3")
            .args([SERVER, "serve"])
            .arg(&port_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("oauth2.log")).expect("log file"))
            .spawn()
            .expect("python3 runs tests/services/oauth2_server.py");
        let mut issuer = Issuer { child, port: 0 };
        let deadline = Instant::now() + Duration::from_secs(10);
        while issuer.port == 0 {
            assert!(Instant::now() < deadline, "the OAuth2 issuer did not start within 10 s");
            if let Some(status) = issuer.child.try_wait().expect("wait") {
                panic!(
                    "the OAuth2 issuer exited {status}: {}",
                    std::fs::read_to_string(dir.join("oauth2.log")).unwrap_or_default()
                );
            }
            issuer.port =
                std::fs::read_to_string(&port_file).ok().and_then(|p| p.trim().parse().ok()).unwrap_or(0);
            std::thread::sleep(Duration::from_millis(20));
        }
        issuer
    }

    pub fn token_url(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    pub fn introspection_url(&self) -> String {
        format!("http://127.0.0.1:{}/introspect", self.port)
    }

    /// Sends an order (`{"lifetime": 4}`, `{"revoke": "access"}`, …).
    pub fn control(&self, order: &str) {
        let url = format!("http://127.0.0.1:{}/control", self.port);
        let answer =
            ureq::post(&url).content_type("application/json").send(order).expect("control the issuer");
        assert_eq!(answer.status(), 200, "{order}");
    }

    pub fn seen(&self) -> Seen {
        let url = format!("http://127.0.0.1:{}/control", self.port);
        let mut answer = ureq::get(&url).call().expect("ask the issuer");
        serde_json::from_str(&answer.body_mut().read_to_string().expect("answer")).expect("json")
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
