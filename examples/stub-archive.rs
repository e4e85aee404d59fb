//! A stand-in archive for client benchmarks: answers every POST with a metadata key made
//! from its body and everything else with 201, as fast as loopback allows, storing
//! nothing. It measures the client alone (esmond-post's memory at a million distinct
//! metadata), where esmond-serve itself would take most of the time; it is never used by a
//! test.
//!
//!   cargo run --release --example stub-archive      (prints `listening on http://ADDR/`)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("listening on http://{}/", listener.local_addr()?);
    std::io::stdout().flush()?;
    for stream in listener.incoming() {
        let stream = stream?;
        std::thread::spawn(move || {
            let _ = serve(stream);
        });
    }
    Ok(())
}

fn serve(stream: std::net::TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut out = stream.try_clone()?;
    let mut input = BufReader::with_capacity(1 << 16, stream);
    let mut line = String::new();
    let mut body = Vec::new();
    let mut posts: u64 = 0;
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let post = line.starts_with("POST ");
        let mut length = 0usize;
        loop {
            line.clear();
            if input.read_line(&mut line)? == 0 {
                return Ok(());
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
        body.resize(length, 0);
        input.read_exact(&mut body)?;
        let reply = if post {
            posts += 1;
            // A key that differs per metadata: a cheap hash of the body, and this
            // connection's count (a client sends one metadata once per run).
            let hash = body.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            format!("{{\"metadata-key\":\"{hash:016x}{posts:08x}\"}}")
        } else {
            String::new()
        };
        // One write per answer (several small ones meet Nagle and delayed ACKs).
        let answer = format!(
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
        out.write_all(answer.as_bytes())?;
    }
}
