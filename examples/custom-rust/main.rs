//! A custom Lambda runtime in Rust, `std` only: the zip's `bootstrap`.
//!
//! It speaks the Lambda Runtime API at `$AWS_LAMBDA_RUNTIME_API` over `std::net::TcpStream`
//! with hand-written HTTP/1.1 (Content-Length bodies, one keep-alive connection): it long-polls
//! `/invocation/next`, answers each event with a greeting, the request id, its pid and a
//! counter (the same process serves every warm invocation), and reports an event
//! `{"fail": true}` through `/invocation/{id}/error`. An unknown `_HANDLER` is reported through
//! `/init/error`. Build: `rustc -O main.rs -o bootstrap` (rustc 1.63, Debian 12's, or newer).

use std::collections::HashMap;
use std::env;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process;

const PREFIX: &str = "/2018-06-01/runtime";
const ERROR_TYPE: &str = "CustomRust.AskedToFail";

struct Response {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map_or("", String::as_str)
    }
}

struct RuntimeApi {
    address: String,
    connection: Option<BufReader<TcpStream>>,
}

impl RuntimeApi {
    /// One request and its response on the keep-alive connection.
    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        if self.connection.is_none() {
            let stream = TcpStream::connect(&self.address)?;
            stream.set_nodelay(true)?;
            self.connection = Some(BufReader::new(stream));
        }
        let reader = self.connection.as_mut().expect("connected above");
        let mut head = format!(
            "{method} {PREFIX}{path} HTTP/1.1\r\nHost: {}\r\n",
            self.address
        );
        for (name, value) in extra {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if method == "POST" {
            head.push_str("Content-Type: application/json\r\n");
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        // One write for head and body: two small writes meet Nagle and delayed ACK (40 ms).
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        reader.get_mut().write_all(&request)?;

        let mut status_line = String::new();
        if reader.read_line(&mut status_line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, status_line.clone()))?;
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let response = Response {
            status,
            headers,
            body,
        };
        if response.header("Connection").eq_ignore_ascii_case("close") {
            self.connection = None;
        }
        Ok(response)
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let reused = self.connection.is_some();
        match self.try_request(method, path, extra, body) {
            Ok(response) => Ok(response),
            Err(error) => {
                self.connection = None;
                // Only a GET is safe to repeat: a repeated POST could answer an invocation twice.
                if reused && method == "GET" {
                    self.try_request(method, path, extra, body)
                } else {
                    Err(error)
                }
            }
        }
    }

    fn post(&mut self, path: &str, error_type: Option<&str>, body: &str) -> io::Result<()> {
        let extra: Vec<(&str, &str)> = error_type
            .map(|t| ("Lambda-Runtime-Function-Error-Type", t))
            .into_iter()
            .collect();
        let response = self.request("POST", path, &extra, body.as_bytes())?;
        if response.status != 202 {
            let answer = String::from_utf8_lossy(&response.body);
            let message = format!("POST {path} answered {}: {answer}", response.status);
            return Err(io::Error::new(io::ErrorKind::Other, message));
        }
        Ok(())
    }
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether the event has `"fail": true`. A scan, not a JSON parser: enough for this example.
fn asks_to_fail(event: &str) -> bool {
    event.match_indices("\"fail\"").any(|(at, key)| {
        let rest = event[at + key.len()..].trim_start();
        rest.strip_prefix(':')
            .map_or(false, |value| value.trim_start().starts_with("true"))
    })
}

fn run() -> io::Result<()> {
    let address = env::var("AWS_LAMBDA_RUNTIME_API")
        .map_err(|_| io::Error::new(io::ErrorKind::NotFound, "AWS_LAMBDA_RUNTIME_API is unset"))?;
    let mut api = RuntimeApi {
        address,
        connection: None,
    };
    let handler = env::var("_HANDLER").unwrap_or_default();
    if handler != "echo" {
        let message = format!("rust runtime has no handler '{handler}' (only \"echo\")");
        eprintln!("{message}");
        let body = format!(
            "{{\"errorType\":\"Runtime.HandlerNotFound\",\"errorMessage\":{}}}",
            json_string(&message)
        );
        api.post("/init/error", Some("Runtime.HandlerNotFound"), &body)?;
        process::exit(1);
    }
    let pid = process::id();
    for count in 1u64.. {
        let next = api.request("GET", "/invocation/next", &[], &[])?;
        if next.status != 200 {
            let message = format!("/invocation/next answered {}", next.status);
            return Err(io::Error::new(io::ErrorKind::Other, message));
        }
        let request_id = next.header("Lambda-Runtime-Aws-Request-Id").to_string();
        // println! flushes at each newline, so the line is in the pipe before the reply goes.
        println!("rust runtime handling {request_id} (invocation {count} in pid {pid})");
        let event = String::from_utf8_lossy(&next.body);
        if asks_to_fail(&event) {
            let message = format!("rust runtime was asked to fail {request_id}");
            let body = format!(
                "{{\"errorType\":\"{ERROR_TYPE}\",\"errorMessage\":{}}}",
                json_string(&message)
            );
            api.post(
                &format!("/invocation/{request_id}/error"),
                Some(ERROR_TYPE),
                &body,
            )?;
        } else {
            let deadline_ms: u64 = next
                .header("Lambda-Runtime-Deadline-Ms")
                .parse()
                .unwrap_or(0);
            // The event is JSON already (the Invoke API checked it): echo it verbatim.
            let event = if event.trim().is_empty() {
                "null"
            } else {
                event.as_ref()
            };
            let body = format!(
                "{{\"greeting\":\"hello from rust\",\"runtime\":\"rust\",\"handler\":{},\
                 \"request_id\":{},\"function_arn\":{},\"deadline_ms\":{deadline_ms},\
                 \"pid\":{pid},\"count\":{count},\"event\":{event}}}",
                json_string(&handler),
                json_string(&request_id),
                json_string(next.header("Lambda-Runtime-Invoked-Function-Arn")),
            );
            api.post(&format!("/invocation/{request_id}/response"), None, &body)?;
        }
    }
    Ok(())
}

fn main() {
    if let Err(error) = run() {
        eprintln!("rust runtime: {error}");
        process::exit(1);
    }
}
