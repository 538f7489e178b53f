//! `adasamp serve`: starts on a free port (`--port 0`, read back from the `listening on` line),
//! answers over HTTP, and exits 0 on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

/// One HTTP/1.1 request with `Connection: close`; returns the status line and the body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.lines().next().unwrap_or_default().to_string();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (status, body)
}

#[test]
fn serve_on_port_0_answers_and_exits_0_on_sigterm() {
    if !common::default_model_present("the serve test") {
        return;
    }
    let (mut child, addr) = common::spawn_serve(&["--max-seq-len", "2048", "--max-running", "2"]);
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let (status, body) = http(&addr, "GET", "/health", "");
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(body, "{\"status\":\"ok\"}");
    let (status, body) = http(
        &addr,
        "POST",
        "/v1/completions",
        r#"{"prompt": "Hello", "max_tokens": 2, "seed": 1}"#,
    );
    assert!(status.contains(" 200 "), "{status}: {body}");
    assert!(body.contains("\"text_completion\""), "{body}");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("adasamp serve did not exit within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}
