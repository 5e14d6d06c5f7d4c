//! A recording proxy for the reference stack: sits between tpm2-tools (swtpm TCTI)
//! and swtpm, forwards the data and control channels, and appends every command /
//! response frame pair of the data channel to a file as `> hex` / `< hex` lines.
//!
//! `cargo run --example tpm_record_proxy -- --listen P --target T --out FILE`
//! (control channel: P+1 → T+1). Used by vendor-testvectors/record.sh.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

fn read_frame(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut header = [0u8; 10];
    s.read_exact(&mut header)?;
    let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
    if !(10..=65536).contains(&size) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad frame size"));
    }
    let mut frame = header.to_vec();
    frame.resize(size, 0);
    s.read_exact(&mut frame[10..])?;
    Ok(frame)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| -> String {
        let i = args
            .iter()
            .position(|a| a == name)
            .unwrap_or_else(|| panic!("missing {name}"));
        args.get(i + 1)
            .cloned()
            .unwrap_or_else(|| panic!("missing value for {name}"))
    };
    let listen: u16 = arg("--listen").parse().expect("--listen PORT");
    let target: u16 = arg("--target").parse().expect("--target PORT");
    let out = Arc::new(Mutex::new(
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(arg("--out"))
            .expect("open --out"),
    ));

    // Control channel: plain byte forwarding.
    let ctrl = TcpListener::bind(("127.0.0.1", listen + 1)).expect("bind control port");
    std::thread::spawn(move || {
        for c in ctrl.incoming().flatten() {
            if let Ok(up) = TcpStream::connect(("127.0.0.1", target + 1)) {
                let (c2, up2) = (
                    c.try_clone().expect("clone"),
                    up.try_clone().expect("clone"),
                );
                std::thread::spawn(move || pipe(c2, up2));
                std::thread::spawn(move || pipe(up, c));
            }
        }
    });

    let data = TcpListener::bind(("127.0.0.1", listen)).expect("bind data port");
    eprintln!("tpm_record_proxy: 127.0.0.1:{listen} -> 127.0.0.1:{target}");
    for client in data.incoming() {
        let Ok(mut client) = client else { continue };
        let Ok(mut up) = TcpStream::connect(("127.0.0.1", target)) else {
            continue;
        };
        let out = out.clone();
        std::thread::spawn(move || {
            while let Ok(cmd) = read_frame(&mut client) {
                if up.write_all(&cmd).is_err() {
                    break;
                }
                let Ok(rsp) = read_frame(&mut up) else { break };
                if let Ok(mut f) = out.lock() {
                    let _ = writeln!(f, "> {}\n< {}", hex(&cmd), hex(&rsp));
                }
                if client.write_all(&rsp).is_err() {
                    break;
                }
            }
        });
    }
}
