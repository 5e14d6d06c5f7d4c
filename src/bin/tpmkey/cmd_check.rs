//! `tpmkey check`: walks through why a TPM cannot be used here, and what to do.

use std::os::unix::fs::MetadataExt;

use tpmkey::tcti::{Tcti, TctiSource};
use tpmkey::transport::TransportError;

fn line(ok: bool, what: &str, detail: &str) {
    println!(
        "{} {what}{}{detail}",
        if ok { "ok  " } else { "FAIL" },
        if detail.is_empty() { "" } else { ": " }
    );
}

/// Runs the checks; returns false when the TPM cannot be used.
pub fn run(tcti: Option<&str>, store: Option<std::path::PathBuf>) -> bool {
    let (tcti, source) = match tcti {
        Some(s) => match s.parse::<Tcti>() {
            Ok(t) => (t, "--tcti"),
            Err(e) => {
                line(false, "TCTI", &e.to_string());
                return false;
            }
        },
        None => match Tcti::from_env_with_source() {
            Ok((t, src)) => (
                t,
                match src {
                    TctiSource::TpmkeyEnv => "$TPMKEY_TCTI",
                    TctiSource::Tpm2toolsEnv => "$TPM2TOOLS_TCTI",
                    TctiSource::Default => "default",
                },
            ),
            Err(e) => {
                line(false, "TCTI", &e.to_string());
                return false;
            }
        },
    };
    line(true, "TPM", &format!("{tcti} ({source})"));
    if let Tcti::Device { path } = &tcti {
        match std::fs::metadata(path) {
            Err(_) => {
                let others: Vec<String> = std::fs::read_dir("/dev")
                    .map(|d| {
                        d.filter_map(|e| e.ok())
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .filter(|n| n.starts_with("tpm"))
                            .collect()
                    })
                    .unwrap_or_default();
                let hint = if others.is_empty() {
                    "no /dev/tpm* at all: no TPM, or it is disabled in the firmware setup (look for TPM, PTT or fTPM); for a simulator set TPMKEY_TCTI=swtpm:host=127.0.0.1,port=2321".to_string()
                } else {
                    format!(
                        "not present, but /dev has {}; set TPMKEY_TCTI=device:/dev/{}",
                        others.join(", "),
                        others[0]
                    )
                };
                line(false, path, &hint);
                return false;
            }
            Ok(m) => {
                let gid = m.gid();
                let in_group = nix::unistd::getgroups()
                    .map(|g| g.iter().any(|x| x.as_raw() == gid))
                    .unwrap_or(false)
                    || nix::unistd::getegid().as_raw() == gid;
                line(
                    true,
                    path,
                    &format!(
                        "mode {:o}, group id {gid}{}",
                        m.mode() & 0o777,
                        if in_group || nix::unistd::geteuid().is_root() {
                            ""
                        } else {
                            " (you are not in its group: sudo usermod -aG tss $USER, then log in again)"
                        }
                    ),
                );
            }
        }
    }
    let mut tpm = match tpmkey::Tpm::open(&tcti) {
        Ok(t) => t,
        Err(tpmkey::Error::Transport(e @ TransportError::Tpm12(_))) => {
            line(false, "TPM 2.0", &e.to_string());
            return false;
        }
        Err(e) => {
            line(false, "open", &e.to_string());
            return false;
        }
    };
    match tpmkey::info::gather(&mut tpm) {
        Ok(i) => {
            line(
                true,
                "TPM 2.0 answers",
                &format!(
                    "{} {}, firmware {}.{}, spec revision {}.{:02}",
                    i.manufacturer,
                    i.vendor,
                    i.firmware.0 >> 16,
                    i.firmware.0 & 0xFFFF,
                    i.revision / 100,
                    i.revision % 100
                ),
            );
            line(
                !i.da.in_lockout,
                "dictionary-attack state",
                &format!(
                    "{} of {} failed tries{}",
                    i.da.failed_tries,
                    i.da.max_tries,
                    if i.da.in_lockout {
                        format!("; IN LOCKOUT: PINs are refused until the counter drops (one try every {} s)", i.da.recovery_time)
                    } else {
                        String::new()
                    }
                ),
            );
            line(
                i.storage_enabled,
                "storage hierarchy",
                if i.storage_enabled {
                    "enabled"
                } else {
                    "disabled: enable it in the firmware setup"
                },
            );
            line(
                !i.owner_auth_set,
                "owner hierarchy",
                if i.owner_auth_set {
                    "has a password: tpmkey needs the SRK at 0x81000001 (e.g. made by systemd-tpm2-setup) or an empty owner password"
                } else {
                    "no password"
                },
            );
        }
        Err(e) => {
            line(false, "TPM 2.0 answers", &e.to_string());
            return false;
        }
    }
    drop(tpm);
    match tpmkey::app::App::open(store, tcti) {
        Ok(app) => match app.connect() {
            Ok(_) => line(
                true,
                "key store",
                &format!("{} belongs to this TPM", app.store.root().display()),
            ),
            Err(tpmkey::Error::Usage(msg)) if msg.contains("not initialized") => {
                line(true, "key store", &msg)
            }
            Err(e) => line(false, "key store", &e.to_string()),
        },
        Err(e) => line(false, "key store", &e.to_string()),
    }
    true
}
