//! A tiny HTTP/1.1 server for tests: every request is answered by a handler of (path, headers,
//! body);
//! one connection per request (`Connection: close`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A running fake server; stops when dropped.
pub struct FakeServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    stop: Arc<AtomicBool>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wake the accept loop
        let _ = std::net::TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

/// Starts a server answering each request with `handler(path, headers, body) → (status, body)`
/// (`headers`: the header lines as received).
pub fn spawn(
    handler: impl Fn(&str, &str, &str) -> (u16, String) + Send + Sync + 'static,
) -> FakeServer {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            if stopped.load(Ordering::SeqCst) {
                break;
            }
            let Ok(mut s) = conn else { continue };
            let handler = handler.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut first = String::new();
                if r.read_line(&mut first).is_err() {
                    return;
                }
                let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
                let mut len = 0;
                let mut headers = String::new();
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).is_err() {
                        return;
                    }
                    headers.push_str(&line);
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                }
                let mut body = vec![0; len];
                if r.read_exact(&mut body).is_err() {
                    return;
                }
                let (status, reply) =
                    handler(&path, headers.trim_end(), &String::from_utf8_lossy(&body));
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                );
            });
        }
    });
    FakeServer { url, stop }
}
