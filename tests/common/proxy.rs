//! An in-process TPM proxy for tests: sits between tpmkey and a swtpm data port,
//! records every command/response frame pair, counts commands, and can tamper with
//! responses (flip bits) to prove that integrity checks fire.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A hook that may change a response before it goes back to the client. It gets
/// the command frame and the response frame.
pub type Tamper = Box<dyn FnMut(&[u8], &mut Vec<u8>) + Send>;

/// One recorded exchange.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// The command frame as the client sent it.
    pub command: Vec<u8>,
    /// The response frame as the client received it (after tampering).
    pub response: Vec<u8>,
}

impl Exchange {
    /// The command code.
    pub fn cc(&self) -> u32 {
        u32::from_be_bytes([
            self.command[6],
            self.command[7],
            self.command[8],
            self.command[9],
        ])
    }
    /// The response code.
    pub fn rc(&self) -> u32 {
        u32::from_be_bytes([
            self.response[6],
            self.response[7],
            self.response[8],
            self.response[9],
        ])
    }
}

/// A running proxy; stops when dropped.
pub struct TpmProxy {
    port: u16,
    log: Arc<Mutex<Vec<Exchange>>>,
    tamper: Arc<Mutex<Option<Tamper>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut header = [0u8; 10];
    s.read_exact(&mut header).ok()?;
    let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
    if !(10..=65536).contains(&size) {
        return None;
    }
    let mut frame = header.to_vec();
    frame.resize(size, 0);
    s.read_exact(&mut frame[10..]).ok()?;
    Some(frame)
}

impl TpmProxy {
    /// Listens on a free loopback port and forwards to the swtpm data port `target`.
    pub fn start(target: u16) -> TpmProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy: bind");
        let port = listener.local_addr().expect("proxy: addr").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let tamper: Arc<Mutex<Option<Tamper>>> = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, tamper2, stop2) = (log.clone(), tamper.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut client) = client else { continue };
                let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                while let Some(command) = read_frame(&mut client) {
                    if upstream.write_all(&command).is_err() {
                        break;
                    }
                    let Some(mut response) = read_frame(&mut upstream) else {
                        break;
                    };
                    if let Some(t) = tamper2.lock().unwrap().as_mut() {
                        t(&command, &mut response);
                    }
                    log2.lock().unwrap().push(Exchange {
                        command,
                        response: response.clone(),
                    });
                    if client.write_all(&response).is_err() {
                        break;
                    }
                }
                let _ = upstream.shutdown(Shutdown::Both);
            }
        });
        TpmProxy {
            port,
            log,
            tamper,
            stop,
            thread: Some(thread),
        }
    }

    /// The TCTI string that reaches the TPM through this proxy.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Every exchange so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().unwrap().clone()
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    /// Number of commands so far.
    pub fn command_count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Installs (or removes) a response-tampering hook.
    pub fn set_tamper(&self, tamper: Option<Tamper>) {
        *self.tamper.lock().unwrap() = tamper;
    }

    /// True when `needle` occurs in any recorded frame, either direction.
    pub fn saw_bytes(&self, needle: &[u8]) -> bool {
        assert!(needle.len() >= 4, "needle too short to be meaningful");
        self.log.lock().unwrap().iter().any(|e| {
            e.command.windows(needle.len()).any(|w| w == needle)
                || e.response.windows(needle.len()).any(|w| w == needle)
        })
    }
}

impl Drop for TpmProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        // Wake the accept loop; the thread is not joined, since a client that is
        // still connected keeps it in its read loop until that client goes away.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        drop(self.thread.take());
    }
}
