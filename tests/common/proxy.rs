//! An in-process TPM proxy for tests: sits between tpmkey and a swtpm data port,
//! records every command/response frame pair, counts commands, and can tamper with
//! responses (flip bits) to prove that integrity checks fire, or fail at command N
//! ([`Fault`]): drop the command, cut its response short, or hold the response
//! while the test kills the client.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// How the proxy fails at the command it is armed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Close the client's connection instead of forwarding: the TPM never sees
    /// the command.
    DropCommand,
    /// Forward the command (the TPM carries it out), send back the first half of
    /// its response, and close the connection.
    CutResponse,
    /// Forward the command, keep its response and wait until [`TpmProxy::release`]
    /// (the test kills the client meanwhile: a process that dies after the TPM
    /// acted and before it heard so); then close the connection.
    HoldResponse,
}

/// The armed fault and the hold/release handshake.
#[derive(Default)]
struct FaultState {
    armed: Option<(usize, Fault)>,
    held: bool,
    released: bool,
}

/// A running proxy; stops when dropped.
pub struct TpmProxy {
    port: u16,
    log: Arc<Mutex<Vec<Exchange>>>,
    tamper: Arc<Mutex<Option<Tamper>>>,
    fault: Arc<(Mutex<FaultState>, Condvar)>,
    seen: Arc<AtomicUsize>,
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
        let fault: Arc<(Mutex<FaultState>, Condvar)> = Arc::default();
        let seen = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, tamper2, stop2) = (log.clone(), tamper.clone(), stop.clone());
        let (fault2, seen2) = (fault.clone(), seen.clone());
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
                    let n = seen2.fetch_add(1, Ordering::SeqCst);
                    let fault = match fault2.0.lock().unwrap().armed {
                        Some((at, f)) if at == n => Some(f),
                        _ => None,
                    };
                    if fault == Some(Fault::DropCommand) {
                        break;
                    }
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
                    match fault {
                        Some(Fault::CutResponse) => {
                            let _ = client.write_all(&response[..response.len() / 2]);
                            break;
                        }
                        Some(Fault::HoldResponse) => {
                            let (lock, cv) = &*fault2;
                            let mut st = lock.lock().unwrap();
                            st.held = true;
                            cv.notify_all();
                            let deadline = Instant::now() + Duration::from_secs(60);
                            while !st.released && Instant::now() < deadline {
                                st = cv.wait_timeout(st, Duration::from_millis(100)).unwrap().0;
                            }
                            break;
                        }
                        _ => {}
                    }
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
            fault,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Arms `fault` for the command numbered `at` (0 = the next one), or disarms
    /// (None); the command count restarts at 0 either way.
    pub fn set_fault(&self, fault: Option<(usize, Fault)>) {
        let mut st = self.fault.0.lock().unwrap();
        *st = FaultState {
            armed: fault,
            ..FaultState::default()
        };
        self.seen.store(0, Ordering::SeqCst);
    }

    /// Disarms a fault, keeping the command count.
    pub fn disarm(&self) {
        self.fault.0.lock().unwrap().armed = None;
    }

    /// Commands that reached the proxy since the last [`TpmProxy::set_fault`].
    pub fn commands_seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }

    /// Waits until a [`Fault::HoldResponse`] holds its response; false after
    /// `limit`.
    pub fn wait_held(&self, limit: Duration) -> bool {
        let (lock, cv) = &*self.fault;
        let deadline = Instant::now() + limit;
        let mut st = lock.lock().unwrap();
        while !st.held {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = cv.wait_timeout(st, deadline - now).unwrap().0;
        }
        true
    }

    /// Lets a held response go (its connection is then closed).
    pub fn release(&self) {
        let (lock, cv) = &*self.fault;
        lock.lock().unwrap().released = true;
        cv.notify_all();
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
        self.release();
        // Wake the accept loop.
        // Wake the accept loop; the thread is not joined, since a client that is
        // still connected keeps it in its read loop until that client goes away.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        drop(self.thread.take());
        super::remove_flush_epoch(&self.tcti());
    }
}
