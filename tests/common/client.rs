//! The HTTP client side of the tests of the HTTP source (tests/http.rs,
//! tests/distributed_sources.rs).

use std::io::Write;
use std::time::Duration;

/// A client that hands back 4xx/5xx answers instead of turning them into errors.
pub fn agent() -> ureq::Agent {
    agent_with(None)
}

/// Like `agent`, trusting only the CA in `ca_pem`.
pub fn agent_trusting(ca_pem: &[u8]) -> ureq::Agent {
    let ca = ureq::tls::Certificate::from_pem(ca_pem).expect("ca pem").to_owned();
    let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::new_with_certs(&[ca])).build();
    agent_with(Some(tls))
}

fn agent_with(tls: Option<ureq::tls::TlsConfig>) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)));
    if let Some(tls) = tls {
        config = config.tls_config(tls);
    }
    config.build().into()
}

/// POSTs `body`; returns the status and the answer's text.
pub fn post(
    agent: &ureq::Agent,
    url: &str,
    content_type: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut request = agent.post(url).header("Content-Type", content_type);
    if let Some(token) = token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let mut answer = request.send(body).unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = answer.status().as_u16();
    (status, answer.body_mut().read_to_string().unwrap_or_default())
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}
