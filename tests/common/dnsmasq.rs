//! dnsmasq as a real nameserver for tests: PTR answers from `--ptr-record`s and a hosts
//! file, NXDOMAIN for every other reverse name. Used by the enrichment tests of the
//! processor crate (`processor/tests/enrich.rs`) and the distributed tests.
#![allow(dead_code)]

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// dnsmasq answering PTR queries from `--ptr-record`s and a hosts file, and NXDOMAIN
/// for every other reverse name. Killed on drop.
pub struct Dnsmasq {
    child: Child,
    /// Where it listens (UDP and TCP).
    pub addr: SocketAddr,
    /// Its log.
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    /// Starts dnsmasq with these PTR records (address, name) and hosts file text.
    pub fn start(ptr_records: &[(&str, &str)], hosts: &str) -> Self {
        let binary = find_dnsmasq();
        let dir = tempfile::tempdir().expect("tempdir");
        let hosts_file = dir.path().join("hosts");
        std::fs::write(&hosts_file, hosts).expect("write hosts");
        let log = dir.path().join("dnsmasq.log");
        // A free port can be taken between our check and dnsmasq's bind: try a few.
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new(&binary);
            cmd.arg("--no-daemon")
                .arg("--conf-file=/dev/null")
                .arg(format!("--port={port}"))
                .arg("--listen-address=127.0.0.1")
                .arg("--bind-interfaces")
                .arg("--no-resolv")
                .arg("--no-hosts")
                .arg(format!("--addn-hosts={}", hosts_file.display()))
                // Reverse zones are answered here only: an unknown name is NXDOMAIN,
                // not REFUSED for want of an upstream server.
                .arg("--local=/in-addr.arpa/")
                .arg("--local=/ip6.arpa/")
                .arg("--pid-file=");
            for (ip, name) in ptr_records {
                cmd.arg(format!("--ptr-record={},{name}", arpa(ip)));
            }
            let stderr = std::fs::File::create(&log).expect("log file");
            let mut child =
                cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr).spawn().expect("start dnsmasq");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().expect("dnsmasq status").is_some() {
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Self { child, addr, log, _dir: dir };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("dnsmasq did not start; its log:\n{}", read(&log));
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A file's text, or nothing.
pub fn read(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    text
}

fn find_dnsmasq() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join("dnsmasq"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "dnsmasq is not installed: the rDNS tests need a real nameserver; \
                 install the Debian package dnsmasq-base (tests/run does)"
            )
        })
}

/// A port free for both UDP and TCP on 127.0.0.1.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The reverse name of an address (`192.0.2.25` → `25.2.0.192.in-addr.arpa`).
fn arpa(text: &str) -> String {
    match text.parse::<IpAddr>().expect("an address") {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let hex: String = v6.octets().iter().map(|b| format!("{b:02x}")).collect();
            let nibbles: Vec<String> = hex.chars().rev().map(String::from).collect();
            format!("{}.ip6.arpa", nibbles.join("."))
        }
    }
}
