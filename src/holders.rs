//! Which other processes hold something this one waits for, for the errors that
//! say so: an open raw TPM device (`/proc/*/fd`), a TCP connection to a swtpm
//! that serves one client at a time (the socket in `/proc/net/tcp` and
//! `/proc/net/tcp6`, its owner in `/proc/*/fd`), or the flock on the key store
//! (`/proc/locks`). Other users' processes are visible to root only.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// "process 1234 (ssh-agent)" or "processes 1 (a), 2 (b)" for `found`; None when
/// it is empty.
pub(crate) fn describe(found: &[String]) -> Option<String> {
    match found.len() {
        0 => None,
        1 => Some(format!("process {}", found[0])),
        _ => Some(format!("processes {}", found.join(", "))),
    }
}

/// Processes other than this one with an open file whose `/proc/PID/fd` link
/// satisfies `matches`, as "PID (comm)"; None when /proc is not mounted.
pub(crate) fn processes_with(matches: impl Fn(&Path) -> bool) -> Option<Vec<String>> {
    let me = std::process::id();
    let procs = std::fs::read_dir("/proc").ok()?;
    let mut found = Vec::new();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| matches(&t)));
        if holds {
            found.push(named(&pid.to_string()));
        }
    }
    Some(found)
}

/// "PID (comm)".
fn named(pid: &str) -> String {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    format!("{pid} ({})", comm.trim())
}

/// At most `limit` bytes of a /proc table; None when it cannot be read.
fn proc_table(path: &str, limit: u64) -> Option<String> {
    let mut text = String::new();
    File::open(path)
        .and_then(|f| f.take(limit).read_to_string(&mut text))
        .ok()?;
    Some(text)
}

/// The processes holding an flock on `file`, from `/proc/locks` (`N: FLOCK
/// ADVISORY WRITE pid major:minor:inode …`, the device numbers in hex; waiters
/// are listed as `N: -> FLOCK …` and do not count).
pub(crate) fn flock_holders(file: &File) -> Vec<String> {
    let (Ok(meta), Some(locks)) = (file.metadata(), proc_table("/proc/locks", 1 << 20)) else {
        return Vec::new();
    };
    // The device number as the kernel prints it (glibc's gnu_dev_major/minor).
    let dev = meta.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let want = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    locks
        .lines()
        .filter_map(
            |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                [_, "FLOCK", _, _, pid, id, ..] if id == want => Some(named(pid)),
                _ => None,
            },
        )
        .collect()
}

/// Processes other than this one with an established TCP connection to `peer`
/// (the swtpm this process waited for).
pub(crate) fn connected_to(peer: SocketAddr) -> Vec<String> {
    let mut sockets = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let mut text = String::new();
        let read =
            std::fs::File::open(table).and_then(|f| f.take(4 << 20).read_to_string(&mut text));
        if read.is_ok() {
            sockets.extend(established_to(&text, peer));
        }
    }
    if sockets.is_empty() {
        return Vec::new();
    }
    processes_with(|t| t.to_str().is_some_and(|t| sockets.contains(t))).unwrap_or_default()
}

/// The sockets ("socket:[inode]") of the established connections to `peer` in a
/// /proc/net/tcp table (`sl local rem st … uid timeout inode`; addresses as hex
/// words in host byte order, the port in hex, state 01 = ESTABLISHED).
fn established_to(table: &str, peer: SocketAddr) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (remote, state, inode) = (f.get(2)?, f.get(3)?, f.get(9)?);
            (*state == "01" && *inode != "0" && parse_addr(remote)? == peer)
                .then(|| format!("socket:[{inode}]"))
        })
        .collect()
}

fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| {
        ip.get(i * 8..i * 8 + 8)
            .and_then(|w| u32::from_str_radix(w, 16).ok())
            .map(u32::to_ne_bytes)
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            let v6 = Ipv6Addr::from(b);
            // An IPv4 peer reached through a dual-stack socket.
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn established_connections_to_a_peer_are_found_in_proc_net_tcp() {
        let peer: SocketAddr = "127.0.0.1:2321".parse().unwrap();
        // 2321 = 0x0911; 127.0.0.1 as the kernel prints it on a little-endian host.
        let lo = u32::from_ne_bytes([127, 0, 0, 1]);
        let table = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
             0: {lo:08X}:0911 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1111 1\n\
             1: {lo:08X}:D431 {lo:08X}:0911 01 00000000:00000000 00:00000000 00000000 0 0 2222 1\n\
             2: {lo:08X}:D432 {lo:08X}:0911 06 00000000:00000000 00:00000000 00000000 0 0 0 1\n\
             3: {lo:08X}:D433 {lo:08X}:0912 01 00000000:00000000 00:00000000 00000000 0 0 3333 1\n"
        );
        assert_eq!(established_to(&table, peer), ["socket:[2222]"]);
        assert_eq!(established_to("header only\n", peer), Vec::<String>::new());
        assert_eq!(
            established_to("h\n0: garbage\n1: x y z\n", peer),
            Vec::<String>::new()
        );
    }

    #[test]
    fn v4_mapped_v6_addresses_are_v4() {
        let w = |b: [u8; 4]| format!("{:08X}", u32::from_ne_bytes(b));
        let text = format!(
            "{}{}{}{}:0911",
            w([0, 0, 0, 0]),
            w([0, 0, 0, 0]),
            w([0, 0, 0xff, 0xff]),
            w([127, 0, 0, 1])
        );
        assert_eq!(parse_addr(&text), Some("127.0.0.1:2321".parse().unwrap()));
    }
}
