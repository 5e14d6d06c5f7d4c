//! What the `tpmkey` commands do, as library calls (the CLI parses arguments and
//! prints; the PKCS#11 module will call the same functions).

use std::path::PathBuf;

use rand_core::{OsRng, RngCore};
use tpm_commands::buffers::Tpm2bPrivate;
use tpm_commands::codec::{Marshal, Unmarshal};
use tpm_commands::structures::TpmtPublic;

use crate::error::{Error, Result};
use crate::keys::ops::{create_key, WrappedKey};
use crate::keys::srk::Srk;
use crate::keys::sshpub::authorized_keys_line;
use crate::keys::templates::{KeyAlgorithm, SrkKind};
use crate::session::start::{start_session, SessionParams};
use crate::session::AuthSession;
use crate::store::{
    from_hex, to_hex, KeyRecord, SrkRecord, Store, StoreRecord, TokenRecord, TpmRecord,
    WrappedRecord, FORMAT_VERSION,
};
use crate::tcti::Tcti;
use crate::token;
use crate::tpm::Tpm;

/// The `--algorithm` names, as tpm2_ptool spells them.
pub fn parse_algorithm(s: &str) -> Result<KeyAlgorithm> {
    Ok(match s {
        "ecc256" => KeyAlgorithm::Ecc256,
        "ecc384" => KeyAlgorithm::Ecc384,
        "rsa2048" => KeyAlgorithm::Rsa2048,
        "rsa3072" => KeyAlgorithm::Rsa3072,
        "rsa4096" => KeyAlgorithm::Rsa4096,
        _ => {
            return Err(Error::Usage(format!(
                "unknown algorithm {s:?}: use ecc256, ecc384, rsa2048, rsa3072 or rsa4096"
            )))
        }
    })
}

/// The name of an algorithm.
pub fn algorithm_name(a: KeyAlgorithm) -> &'static str {
    match a {
        KeyAlgorithm::Ecc256 => "ecc256",
        KeyAlgorithm::Ecc384 => "ecc384",
        KeyAlgorithm::Rsa2048 => "rsa2048",
        KeyAlgorithm::Rsa3072 => "rsa3072",
        KeyAlgorithm::Rsa4096 => "rsa4096",
    }
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn wrap_record(w: &WrappedKey) -> Result<WrappedRecord> {
    Ok(WrappedRecord {
        private: to_hex(w.private.as_bytes()),
        public: to_hex(&w.public.to_bytes()?),
    })
}

/// A store file whose contents do not parse (`path` names it).
fn corrupt(path: &std::path::Path, reason: String) -> Error {
    Error::Store(crate::store::StoreError::Corrupt {
        path: path.to_path_buf(),
        reason,
    })
}

/// Reads a wrapped object back from its record (`path` names the file in errors).
///
/// # Errors
/// Corrupt hex or areas.
pub fn unwrap_record(r: &WrappedRecord, path: &std::path::Path) -> Result<WrappedKey> {
    let corrupt = |reason: String| corrupt(path, reason);
    let private =
        Tpm2bPrivate::new(from_hex(&r.private, path)?).map_err(|e| corrupt(e.to_string()))?;
    let public =
        TpmtPublic::from_bytes(&from_hex(&r.public, path)?).map_err(|e| corrupt(e.to_string()))?;
    Ok(WrappedKey { private, public })
}

/// Keys with their token labels, and the key files that could not be read.
pub type KeyListing = (Vec<(String, KeyRecord)>, Vec<crate::store::StoreError>);

/// What `init` found.
#[derive(Clone, Debug)]
pub struct InitReport {
    /// The SRK came from 0x81000001.
    pub persistent: bool,
    /// Its Name, hex.
    pub name: String,
    /// The store was already initialized (same SRK).
    pub already: bool,
}

/// A connection ready for secret-bearing commands.
pub struct Connected {
    /// The TPM.
    pub tpm: Tpm,
    /// The pinned SRK.
    pub srk: Srk,
    /// A salted HMAC session to it.
    pub session: AuthSession,
}

/// What unlocks a token's secret for making a key.
#[derive(Clone, Copy)]
pub enum Unlock<'a> {
    /// The user PIN: the secret is unsealed with it.
    Pin(&'a [u8]),
    /// The secret itself, unsealed earlier (a PKCS#11 login).
    Secret(&'a [u8]),
}

/// The store plus where the TPM is.
pub struct App {
    /// The key store.
    pub store: Store,
    /// The TPM.
    pub tcti: Tcti,
}

impl App {
    /// Opens the store at `store` (or the default location) for the TPM at `tcti`.
    ///
    /// # Errors
    /// Store errors.
    pub fn open(store: Option<PathBuf>, tcti: Tcti) -> Result<App> {
        let path = match store {
            Some(p) => p,
            None => Store::default_path()?,
        };
        Ok(App {
            store: Store::open(path)?,
            tcti,
        })
    }

    /// The SRK type a store record names.
    pub fn srk_kind(rec: &SrkRecord) -> SrkKind {
        if rec.kind == "rsa" {
            SrkKind::Rsa
        } else {
            SrkKind::Ecc
        }
    }

    /// `tpmkey init`: finds or derives the SRK, makes it persistent at 0x81000001
    /// when `persist` and the handle is free (so later processes skip
    /// TPM2_CreatePrimary), and pins its Name. Idempotent.
    ///
    /// # Errors
    /// TPM errors; a store pinned to another TPM.
    pub fn init(&self, kind: SrkKind, persist: bool) -> Result<InitReport> {
        let _lock = self.store.lock()?;
        let mut rec = self.store.read_record()?;
        let mut tpm = Tpm::open(&self.tcti)?;
        let tpm_record = crate::info::gather(&mut tpm).ok().map(|i| TpmRecord {
            manufacturer: i.manufacturer,
            vendor: i.vendor,
            firmware: i.firmware,
        });
        if let Some(pinned) = rec.srk.clone() {
            let srk = Srk::load(&mut tpm, Self::srk_kind(&pinned))?;
            srk.check_pinned(&from_hex(
                &pinned.name,
                &self.store.root().join("store.json"),
            )?)?;
            // Stores from before these fields: record them now (same format version).
            let mut upgraded = false;
            if rec.tpm.is_none() && tpm_record.is_some() {
                rec.tpm = tpm_record;
                upgraded = true;
            }
            if let Some(p) = rec.srk.as_mut() {
                if p.public.is_none() || p.persistent != srk.persistent {
                    p.public = Some(to_hex(&srk.public.to_bytes()?));
                    p.persistent = srk.persistent;
                    upgraded = true;
                }
            }
            if upgraded {
                self.store.write_record(&rec)?;
            }
            return Ok(InitReport {
                persistent: srk.persistent,
                name: pinned.name.clone(),
                already: true,
            });
        }
        let mut srk = Srk::load(&mut tpm, kind)?;
        if persist && !srk.persistent {
            srk.make_persistent(&mut tpm)?;
        }
        let name = to_hex(&srk.name);
        rec = StoreRecord {
            version: FORMAT_VERSION,
            srk: Some(SrkRecord {
                kind: if kind == SrkKind::Rsa {
                    "rsa".into()
                } else {
                    "ecc".into()
                },
                name: name.clone(),
                persistent: srk.persistent,
                public: Some(to_hex(&srk.public.to_bytes()?)),
            }),
            tpm: tpm_record,
        };
        self.store.write_record(&rec)?;
        Ok(InitReport {
            persistent: srk.persistent,
            name,
            already: false,
        })
    }

    /// Opens the TPM and takes the pinned SRK from the store when it is persistent
    /// and its public area is recorded: no TPM command. Every secret then goes in
    /// a session salted to that public key, which only the TPM holding its private
    /// key can answer (a substituted TPM fails the response HMAC; a key blob loads
    /// under no other parent). Otherwise as [`App::connect_srk`].
    ///
    /// # Errors
    /// Not initialized; a corrupt store; as [`App::connect_srk`].
    pub fn connect_srk_pinned(&self) -> Result<(Tpm, Srk)> {
        let rec = self.store.read_record()?;
        let path = self.store.root().join("store.json");
        if let Some(pinned) = rec.srk.as_ref().filter(|p| p.persistent) {
            if let Some(public) = &pinned.public {
                let public = TpmtPublic::from_bytes(&from_hex(public, &path)?)
                    .map_err(|e| corrupt(&path, e.to_string()))?;
                let srk = Srk::pinned(public, Self::srk_kind(pinned))?;
                if to_hex(&srk.name) != pinned.name {
                    return Err(corrupt(
                        &path,
                        "the SRK's recorded public area does not match its Name".into(),
                    ));
                }
                return Ok((Tpm::open(&self.tcti)?, srk));
            }
        }
        self.connect_srk()
    }

    /// Opens the TPM and loads the pinned SRK, failing on another TPM.
    ///
    /// # Errors
    /// Not initialized; another TPM; TPM errors.
    pub fn connect_srk(&self) -> Result<(Tpm, Srk)> {
        let rec = self.store.read_record()?;
        let pinned = rec.srk.ok_or_else(|| {
            Error::Usage(format!(
                "the key store {} is not initialized: run `tpmkey init` first",
                self.store.root().display()
            ))
        })?;
        let mut tpm = Tpm::open(&self.tcti)?;
        let srk = Srk::load(&mut tpm, Self::srk_kind(&pinned))?;
        srk.check_pinned(&from_hex(
            &pinned.name,
            &self.store.root().join("store.json"),
        )?)?;
        Ok((tpm, srk))
    }

    /// Opens the TPM, loads the pinned SRK (failing on another TPM) and starts a
    /// salted session to it.
    ///
    /// # Errors
    /// Not initialized; another TPM; TPM errors.
    pub fn connect(&self) -> Result<Connected> {
        let (mut tpm, srk) = self.connect_srk()?;
        let session = start_session(&mut tpm, &SessionParams::salted_hmac(&srk.salt_key()?))?;
        Ok(Connected { tpm, srk, session })
    }

    /// `tpmkey token add`.
    ///
    /// # Errors
    /// An existing label; TPM errors.
    pub fn token_add(&self, label: &str, pins: Option<(&[u8], &[u8])>) -> Result<()> {
        crate::store::check_name("token label", label)?;
        let _lock = self.store.lock()?;
        if self.store.token_labels()?.iter().any(|l| l == label) {
            return Err(Error::Usage(format!(
                "a token labelled {label:?} exists already"
            )));
        }
        let mut c = self.connect()?;
        let t = token::create_token(&mut c.tpm, &c.srk, &mut c.session, pins)?;
        let mut rec = TokenRecord {
            version: FORMAT_VERSION,
            label: label.to_string(),
            no_pin: pins.is_none(),
            user_seal: Some(wrap_record(&t.user_seal)?),
            so_seal: t.so_seal.as_ref().map(wrap_record).transpose()?,
            user_seal_handle: None,
            created: now(),
        };
        self.store.write_token(&rec)?;
        if pins.is_some() {
            rec.user_seal_handle = self.persist_user_seal(&mut c, &t.user_seal)?;
            if rec.user_seal_handle.is_some() {
                self.store.write_token(&rec)?;
            }
        }
        Ok(())
    }

    /// Keeps a user seal persistent (only where the SRK is persistent too: a
    /// transient SRK is derived again by every process, and a login would not gain).
    /// None when the TPM has no room or the owner hierarchy has a password.
    fn persist_user_seal(&self, c: &mut Connected, seal: &WrappedKey) -> Result<Option<u32>> {
        if !c.srk.persistent {
            return Ok(None);
        }
        Ok(crate::keys::persist::persist(
            &mut c.tpm,
            &c.srk,
            seal,
            crate::keys::persist::TOKEN_SEALS,
        )?
        .map(|h| h.0))
    }

    /// Puts a new user seal in place of the old one (PIN change, SO reset): the old
    /// persistent copy is removed first, the record written, then the new seal made
    /// persistent. A crash in between leaves a token that still works from its blob.
    fn replace_user_seal(
        &self,
        c: &mut Connected,
        t: &mut TokenRecord,
        new_seal: &WrappedKey,
    ) -> Result<()> {
        let path = self.token_path(&t.label);
        if let (Some(h), Some(old)) = (t.user_seal_handle, t.user_seal.as_ref()) {
            let old = unwrap_record(old, &path)?;
            crate::keys::persist::evict(&mut c.tpm, tpm_commands::constants::TpmHandle(h), &old)?;
        }
        t.user_seal = Some(wrap_record(new_seal)?);
        t.user_seal_handle = None;
        self.store.write_token(t)?;
        t.user_seal_handle = self.persist_user_seal(c, new_seal)?;
        if t.user_seal_handle.is_some() {
            self.store.write_token(t)?;
        }
        Ok(())
    }

    /// Drops a persistent handle that no longer holds the token's user seal from its
    /// record, so that later logins go straight to the blob (a foreign object there
    /// would count each login's HMAC as a failed authorization). Best effort.
    fn forget_user_seal_handle(&self, label: &str, handle: u32) {
        let Ok(_lock) = self.store.lock() else { return };
        if let Ok(mut t) = self.store.read_token(label) {
            if t.user_seal_handle == Some(handle) {
                t.user_seal_handle = None;
                let _ = self.store.write_token(&t);
            }
        }
    }

    /// `tpmkey token rm`: the token and its keys leave the store, and its persistent
    /// user seal leaves the TPM. A TPM that cannot be reached is reported, and the
    /// token is removed all the same (its seal then stays at the handle named).
    ///
    /// # Errors
    /// Unknown token; store errors. A TPM error is returned after the removal as
    /// [`Error::Usage`] with what is left behind.
    pub fn token_rm(&self, label: &str) -> Result<()> {
        let _lock = self.store.lock()?;
        let t = self.store.read_token(label)?;
        let mut left = None;
        if let (Some(h), Some(seal)) = (t.user_seal_handle, t.user_seal.as_ref()) {
            let seal = unwrap_record(seal, &self.token_path(label))?;
            let r = self.connect_srk().and_then(|(mut tpm, _)| {
                crate::keys::persist::evict(&mut tpm, tpm_commands::constants::TpmHandle(h), &seal)
            });
            if let Err(e) = r {
                left = Some(format!(
                    "token {label:?} removed, but its user seal stays persistent at 0x{h:08x} ({e}); remove it with `tpm2_evictcontrol -C o -c 0x{h:08x}`"
                ));
            }
        }
        self.store.remove_token(label)?;
        match left {
            Some(msg) => Err(Error::Usage(msg)),
            None => Ok(()),
        }
    }

    /// The path of a token's file, for error messages.
    pub fn token_path(&self, label: &str) -> PathBuf {
        self.store
            .root()
            .join("tokens")
            .join(label)
            .join("token.json")
    }

    /// Unseals a token's secret with the user PIN (ignored for no-PIN tokens), or
    /// with the SO PIN when `so`.
    ///
    /// # Errors
    /// Wrong PIN, lockout, TPM errors.
    pub fn token_secret(
        &self,
        c: &mut Connected,
        label: &str,
        pin: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        self.unseal_token(c, label, pin, false)
    }

    /// Unseals a token's secret from its user seal (`so` false) or SO seal.
    ///
    /// # Errors
    /// No such seal, wrong PIN ([`Error::Tpm`] with TPM_RC_AUTH_FAIL), lockout
    /// ([`Error::Lockout`]), TPM errors.
    pub fn unseal_token(
        &self,
        c: &mut Connected,
        label: &str,
        pin: &[u8],
        so: bool,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let t = self.store.read_token(label)?;
        let path = self.token_path(label);
        let (seal, pin) = if so {
            let s = t
                .so_seal
                .as_ref()
                .ok_or_else(|| Error::Usage(format!("token {label:?} has no SO PIN")))?;
            (s, pin)
        } else {
            let s = t
                .user_seal
                .as_ref()
                .ok_or_else(|| Error::Usage(format!("token {label:?} has no user PIN set")))?;
            (s, if t.no_pin { &b""[..] } else { pin })
        };
        let seal = unwrap_record(seal, &path)?;
        let persistent = if so { None } else { t.user_seal_handle };
        let r = match persistent {
            Some(h) => {
                let h = tpm_commands::constants::TpmHandle(h);
                match token::login_persistent(&mut c.tpm, h, &mut c.session, &seal, pin) {
                    // Another object at the handle (or none): not a PIN question.
                    Err(Error::Tpm { rc, .. })
                        if matches!(
                            rc.base(),
                            tpm_commands::rc::ResponseCode::AUTH_FAIL
                                | tpm_commands::rc::ResponseCode::HANDLE
                        ) && !crate::keys::persist::holds(&mut c.tpm, h, &seal)? =>
                    {
                        let r = token::login(&mut c.tpm, &c.srk, &mut c.session, &seal, pin);
                        if r.is_ok() {
                            self.forget_user_seal_handle(label, h.0);
                        }
                        r
                    }
                    other => other,
                }
            }
            None => token::login(&mut c.tpm, &c.srk, &mut c.session, &seal, pin),
        };
        match r {
            Err(Error::Tpm { rc, .. }) if rc.base() == tpm_commands::rc::ResponseCode::LOCKOUT => {
                let da = crate::info::gather(&mut c.tpm).map(|i| i.da).ok();
                Err(Error::Lockout {
                    failed: da.as_ref().map_or(0, |d| d.failed_tries),
                    max: da.as_ref().map_or(0, |d| d.max_tries),
                    interval: da.as_ref().map_or(0, |d| d.recovery_time),
                })
            }
            other => other,
        }
    }

    /// `tpmkey key add`: a key made in the TPM, its authValue derived from the
    /// token secret.
    ///
    /// # Errors
    /// Unknown token, a label in use, wrong PIN, an algorithm the TPM lacks.
    pub fn key_add(
        &self,
        token_label: &str,
        label: &str,
        alg: KeyAlgorithm,
        user_pin: &[u8],
    ) -> Result<KeyRecord> {
        self.add_key(token_label, label, alg, user_pin, false, |c, auth| {
            create_key(&mut c.tpm, &c.srk, &mut c.session, alg, auth)
        })
    }

    /// `tpmkey key import`: an existing private key moved into the TPM
    /// (TPM2_Import), its authValue derived from the token secret.
    ///
    /// # Errors
    /// Unknown token, a label in use, wrong PIN, TPM errors.
    pub fn key_import(
        &self,
        token_label: &str,
        label: &str,
        key: &crate::keys::import::PrivateKey,
        user_pin: &[u8],
    ) -> Result<KeyRecord> {
        let alg = match key {
            crate::keys::import::PrivateKey::Ecc { alg, .. }
            | crate::keys::import::PrivateKey::Rsa { alg, .. } => *alg,
        };
        self.add_key(token_label, label, alg, user_pin, true, |c, auth| {
            crate::keys::import::import_key(&mut c.tpm, &c.srk, &mut c.session, key, auth)
        })
    }

    /// The part of `key add` and `key import` around making the key: connect,
    /// then [`App::add_key_on`].
    fn add_key(
        &self,
        token_label: &str,
        label: &str,
        alg: KeyAlgorithm,
        user_pin: &[u8],
        imported: bool,
        make: impl FnOnce(&mut Connected, &[u8]) -> Result<WrappedKey>,
    ) -> Result<KeyRecord> {
        let mut c = self.connect()?;
        self.add_key_on(
            &mut c,
            token_label,
            label,
            None,
            alg,
            Unlock::Pin(user_pin),
            imported,
            make,
        )
    }

    /// Under the store lock: refuse a label (or id) in use and an algorithm the TPM
    /// lacks, find the key's authValue (empty for a no-PIN token, else
    /// HMAC(token secret, id) with the secret unsealed by `unlock`), let `make` put
    /// the key in the TPM, and record it. `id` is random when None.
    ///
    /// # Errors
    /// Unknown token, a label or id in use, wrong PIN, an algorithm the TPM lacks.
    #[allow(clippy::too_many_arguments)]
    pub fn add_key_on(
        &self,
        c: &mut Connected,
        token_label: &str,
        label: &str,
        id: Option<&[u8]>,
        alg: KeyAlgorithm,
        unlock: Unlock<'_>,
        imported: bool,
        make: impl FnOnce(&mut Connected, &[u8]) -> Result<WrappedKey>,
    ) -> Result<KeyRecord> {
        // The PIN is checked before the store lock is taken (a login may update the
        // token record; see `forget_user_seal_handle`).
        let unsealed = match (self.store.read_token(token_label)?.no_pin, unlock) {
            (false, Unlock::Pin(pin)) => Some(self.token_secret(c, token_label, pin)?),
            _ => None,
        };
        let _lock = self.store.lock()?;
        let t = self.store.read_token(token_label)?;
        let (keys, _) = self.store.read_keys(token_label)?;
        if keys.iter().any(|k| k.label == label) {
            return Err(Error::Usage(format!(
                "token {token_label:?} already has a key labelled {label:?}"
            )));
        }
        let id = match id {
            Some(id) => {
                if id.is_empty() || id.len() > 32 {
                    return Err(Error::Usage("a key id must be 1 to 32 bytes".into()));
                }
                if keys
                    .iter()
                    .any(|k| k.id == to_hex(id) || k.shown_id() == to_hex(id))
                {
                    return Err(Error::Usage(format!(
                        "token {token_label:?} already has a key with id {}",
                        to_hex(id)
                    )));
                }
                id.to_vec()
            }
            None => {
                let mut id = [0u8; 8];
                OsRng.fill_bytes(&mut id);
                id.to_vec()
            }
        };
        if !crate::keys::ops::supports(&mut c.tpm, alg)? {
            return Err(Error::Usage(format!(
                "this TPM does not support {} keys (TPM2_TestParms)",
                algorithm_name(alg)
            )));
        }
        let auth = if t.no_pin {
            zeroize::Zeroizing::new(Vec::new())
        } else {
            match (unlock, &unsealed) {
                (Unlock::Secret(s), _) => token::key_auth(s, &id),
                (Unlock::Pin(_), Some(secret)) => token::key_auth(secret, &id),
                (Unlock::Pin(_), None) => {
                    return Err(Error::Usage(format!(
                        "token {token_label:?} gained a PIN meanwhile; try again"
                    )))
                }
            }
        };
        let wrapped = make(c, &auth)?;
        let rec = KeyRecord {
            version: FORMAT_VERSION,
            label: label.to_string(),
            id: to_hex(&id),
            algorithm: algorithm_name(alg).into(),
            blob: wrap_record(&wrapped)?,
            imported,
            created: now(),
            empty_auth: auth.is_empty(),
            cka_id: None,
        };
        self.store.write_key(token_label, &rec)?;
        Ok(rec)
    }

    /// `tpmkey pin change`: the old user PIN proven to the TPM, the new one set on
    /// the user seal (TPM2_ObjectChangeAuth); no key is re-created.
    ///
    /// # Errors
    /// Wrong PIN, lockout, a no-PIN token.
    pub fn pin_change(&self, label: &str, old: &[u8], new: &[u8]) -> Result<()> {
        let mut c = self.connect()?;
        self.change_pin_on(&mut c, label, old, new, false)
    }

    /// Changes the user PIN (`so` false) or the SO PIN of a token on an open
    /// connection: TPM2_ObjectChangeAuth on that seal, the old PIN proven by HMAC.
    ///
    /// # Errors
    /// Wrong PIN, lockout, a no-PIN token, a token with no such PIN.
    pub fn change_pin_on(
        &self,
        c: &mut Connected,
        label: &str,
        old: &[u8],
        new: &[u8],
        so: bool,
    ) -> Result<()> {
        let _lock = self.store.lock()?;
        let mut t = self.store.read_token(label)?;
        if t.no_pin {
            return Err(Error::Usage(format!("token {label:?} has no PIN")));
        }
        let path = self.token_path(label);
        let slot = if so { &mut t.so_seal } else { &mut t.user_seal };
        let seal = unwrap_record(
            slot.as_ref()
                .ok_or_else(|| Error::Usage("no such PIN is set".into()))?,
            &path,
        )?;
        let new_seal = token::change_pin(&mut c.tpm, &c.srk, &mut c.session, &seal, old, new)?;
        if so {
            *slot = Some(wrap_record(&new_seal)?);
            self.store.write_token(&t)?;
            return Ok(());
        }
        self.replace_user_seal(c, &mut t, &new_seal)
    }

    /// Replaces a token's user seal (a new user PIN set by the SO).
    ///
    /// # Errors
    /// Store errors.
    pub fn set_user_seal(&self, c: &mut Connected, label: &str, seal: &WrappedKey) -> Result<()> {
        let _lock = self.store.lock()?;
        let mut t = self.store.read_token(label)?;
        self.replace_user_seal(c, &mut t, seal)
    }

    /// `tpmkey pin reset`: the SO PIN unseals the token secret, which is sealed
    /// again under a new user PIN.
    ///
    /// # Errors
    /// Wrong SO PIN, lockout, a no-PIN token.
    pub fn pin_reset(&self, label: &str, so_pin: &[u8], new_user: &[u8]) -> Result<()> {
        let _lock = self.store.lock()?;
        let mut t = self.store.read_token(label)?;
        let path = self.token_path(label);
        let so = unwrap_record(
            t.so_seal
                .as_ref()
                .ok_or_else(|| Error::Usage(format!("token {label:?} has no SO PIN")))?,
            &path,
        )?;
        let mut c = self.connect()?;
        let new_seal = token::reset_pin(&mut c.tpm, &c.srk, &mut c.session, &so, so_pin, new_user)?;
        self.replace_user_seal(&mut c, &mut t, &new_seal)
    }

    /// Every key, with its token label (reads the store only; no TPM).
    ///
    /// # Errors
    /// Store errors; corrupt key files are reported on stderr by the caller via
    /// the second list.
    pub fn key_list(&self, token: Option<&str>) -> Result<KeyListing> {
        let labels = match token {
            Some(t) => vec![t.to_string()],
            None => self.store.token_labels()?,
        };
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for l in labels {
            let (keys, b) = self.store.read_keys(&l)?;
            bad.extend(b);
            out.extend(keys.into_iter().map(|k| (l.clone(), k)));
        }
        Ok((out, bad))
    }

    /// authorized_keys lines for the selected keys (comment = key label).
    ///
    /// # Errors
    /// Store errors, corrupt public areas.
    pub fn ssh_pubkeys(&self, token: Option<&str>, label: Option<&str>) -> Result<Vec<String>> {
        let (keys, _) = self.key_list(token)?;
        let mut lines = Vec::new();
        for (t, k) in keys
            .iter()
            .filter(|(_, k)| label.is_none_or(|l| k.label == l))
        {
            let path = self
                .store
                .root()
                .join("tokens")
                .join(t)
                .join("keys")
                .join(format!("{}.json", k.id));
            let w = unwrap_record(&k.blob, &path)?;
            lines.push(authorized_keys_line(&w.public, &k.label)?);
        }
        Ok(lines)
    }

    /// `tpmkey sign`: signs `data` with key `key_label` of token `token_label`
    /// (digest with `hash` on the host, one TPM2_Sign: ECDSA or RSASSA), checks
    /// the signature in software against the key's public area, and returns it
    /// (ECDSA r || s, RSA PKCS#1 v1.5). The key's authValue is proven by HMAC in
    /// the salted session; it is never sent.
    ///
    /// # Errors
    /// Unknown token or key, wrong PIN, lockout, TPM errors, a signature that does
    /// not verify.
    pub fn sign_data(
        &self,
        token_label: &str,
        key_label: &str,
        user_pin: &[u8],
        hash: crate::crypto::hash::HashAlg,
        data: &[u8],
    ) -> Result<Vec<u8>> {
        use crate::keys::signature::{sign_digest, verify};
        let (keys, _) = self.store.read_keys(token_label)?;
        let k = keys.iter().find(|k| k.label == key_label).ok_or_else(|| {
            Error::Usage(format!(
                "token {token_label:?} has no key labelled {key_label:?} (see `tpmkey key list`)"
            ))
        })?;
        let path = self.token_path(token_label);
        let wrapped = unwrap_record(&k.blob, &path)?;
        let mut c = self.connect()?;
        let auth = if k.empty_auth {
            zeroize::Zeroizing::new(Vec::new())
        } else {
            let secret = self.token_secret(&mut c, token_label, user_pin)?;
            token::key_auth(&secret, &from_hex(&k.id, &path)?)
        };
        let key = crate::keys::ops::load_key_with(
            &mut c.tpm,
            &c.srk,
            crate::tpm::Auth::EmptyPassword,
            &wrapped,
        )?;
        let digest = hash.hash(&[data]);
        let key_auth = if auth.is_empty() {
            crate::tpm::Auth::EmptyPassword
        } else {
            crate::tpm::Auth::Session(&mut c.session, &auth)
        };
        let sig = sign_digest(&mut c.tpm, &key, key_auth, hash, &digest);
        let _ = c.tpm.flush(key.handle);
        let sig = sig?;
        verify(&wrapped.public, hash, &digest, &sig)?;
        Ok(sig)
    }
}
