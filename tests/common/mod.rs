//! Helpers shared by the end-to-end tests that run `ruaflow` as a long-lived process.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Sends SIGTERM and returns whether the process exited 0 within 30 s (it is killed
/// otherwise).
pub fn terminate(mut child: Child) -> bool {
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills and reaps a process a test left running (on failure), so no server outlives it.
pub fn reap(child: Option<Child>) {
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind :0");
    listener.local_addr().expect("addr").port()
}
