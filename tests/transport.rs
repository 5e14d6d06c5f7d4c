//! Transports against a real swtpm: TCP, unix socket, MS-simulator framing, and
//! the character-device semantics over `swtpm chardev`.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::{Swtpm, SwtpmChardev, GET_RANDOM_8};
use tpmkey::tcti::Tcti;
use tpmkey::transport::{
    DeviceTransport, Framing, SocketAddr, SocketTransport, Transport, TransportError,
};

fn assert_random_ok(t: &mut dyn Transport) {
    for _ in 0..3 {
        let rsp = t.transact(&GET_RANDOM_8).expect("transact");
        assert_eq!(
            &rsp[..10],
            &[0x80, 0x01, 0, 0, 0, 0x14, 0, 0, 0, 0],
            "GetRandom(8) response header"
        );
        assert_eq!(&rsp[10..12], &[0, 8]);
    }
}

#[test]
fn swtpm_tcp_raw_frames() {
    let tpm = Swtpm::start();
    let tcti: Tcti = tpm.tcti().parse().unwrap();
    assert_random_ok(tcti.open().unwrap().as_mut());
}

#[test]
fn swtpm_unix_socket() {
    let tpm = Swtpm::start_unix();
    assert!(tpm.tcti().starts_with("swtpm:path="));
    let tcti: Tcti = tpm.tcti().parse().unwrap();
    assert_random_ok(tcti.open().unwrap().as_mut());
}

#[test]
fn mssim_framing_on_swtpm_data_port() {
    // swtpm's data port accepts the Microsoft simulator framing too; its control
    // channel is on another port, so no platform signals reach it.
    let tpm = Swtpm::start();
    let tcti: Tcti = format!("mssim:host=127.0.0.1,port={}", tpm.data_port())
        .parse()
        .unwrap();
    assert_random_ok(tcti.open().unwrap().as_mut());
    let mut t = SocketTransport::connect(
        SocketAddr::Tcp {
            host: "127.0.0.1".into(),
            port: tpm.data_port(),
        },
        Framing::Mssim,
    )
    .unwrap();
    assert_random_ok(&mut t);
}

#[test]
fn device_semantics_over_swtpm_chardev() {
    let mut c = SwtpmChardev::start();
    let mut t = DeviceTransport::from_fd(c.take_fd(), "swtpm chardev");
    assert_random_ok(&mut t);
}

#[test]
fn refused_connection_says_is_swtpm_running() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tcti: Tcti = format!("swtpm:host=127.0.0.1,port={port}").parse().unwrap();
    let e = tcti.open().err().expect("must fail");
    assert!(matches!(e, TransportError::Refused { .. }), "{e:?}");
    assert!(e.to_string().contains("is swtpm running"), "{e}");
}

#[test]
fn missing_device_says_no_such_device() {
    let e = DeviceTransport::open("/dev/tpm-definitely-not-here").expect_err("must fail");
    assert!(matches!(e, TransportError::NoDevice { .. }), "{e:?}");
    assert!(e.to_string().contains("no such device"), "{e}");
}

/// A fake peer answering every command with `reply`.
fn fake_peer(reply: Vec<u8>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let mut buf = [0u8; 12];
            if s.read_exact(&mut buf).is_ok() {
                let _ = s.write_all(&reply);
            }
        }
    });
    port
}

#[test]
fn tpm12_peer_is_named() {
    // A TPM 1.2 answers with tag TPM_TAG_RSP_COMMAND (0x00C4).
    let port = fake_peer(vec![0x00, 0xC4, 0, 0, 0, 0x0a, 0, 0, 0, 0x1e]);
    let mut t = SocketTransport::connect(
        SocketAddr::Tcp {
            host: "127.0.0.1".into(),
            port,
        },
        Framing::Raw,
    )
    .unwrap();
    let e = t.transact(&GET_RANDOM_8).unwrap_err();
    assert!(matches!(e, TransportError::Tpm12(_)), "{e:?}");
    assert!(e.to_string().contains("TPM 1.2"));
}

#[test]
fn oversized_response_is_refused_without_allocating() {
    let port = fake_peer(vec![0x80, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]);
    let mut t = SocketTransport::connect(
        SocketAddr::Tcp {
            host: "127.0.0.1".into(),
            port,
        },
        Framing::Raw,
    )
    .unwrap();
    let e = t.transact(&GET_RANDOM_8).unwrap_err();
    assert!(matches!(e, TransportError::Malformed { .. }), "{e:?}");
}

#[test]
fn truncated_response_is_an_error() {
    let port = fake_peer(vec![0x80, 0x01, 0, 0, 0, 0x20, 0, 0]);
    let mut t = SocketTransport::connect(
        SocketAddr::Tcp {
            host: "127.0.0.1".into(),
            port,
        },
        Framing::Raw,
    )
    .unwrap();
    assert!(t.transact(&GET_RANDOM_8).is_err());
}
