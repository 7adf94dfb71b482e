//! A webhook receiver on loopback: a real HTTP/1.1 server (std TCP, one thread per
//! connection) that answers every POST with 200 and keeps each JSON body it received,
//! for tests of the alert sinks end to end.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// The bodies received so far, in arrival order.
pub struct Webhook {
    pub url: String,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Webhook {
    /// Starts listening on a free loopback port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let kept = Arc::clone(&kept);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut stream = stream;
                    loop {
                        let mut length = 0usize;
                        let mut line = String::new();
                        // The request line, then headers up to the empty line.
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            let header = line.trim_end();
                            if header.is_empty() {
                                break;
                            }
                            if let Some((name, value)) = header.split_once(':') {
                                if name.eq_ignore_ascii_case("content-length") {
                                    length = value.trim().parse().unwrap_or(0);
                                }
                            }
                        }
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        if let Ok(value) = serde_json::from_slice(&body) {
                            kept.lock().expect("lock").push(value);
                        }
                        let answer = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if stream.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Webhook { url, bodies }
    }

    /// Every body received so far.
    pub fn received(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().expect("lock").clone()
    }
}
