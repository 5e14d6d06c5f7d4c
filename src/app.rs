//! What the `tpmkey` commands do, as library calls (the CLI parses arguments and
//! prints; the PKCS#11 module will call the same functions).

use std::path::PathBuf;

use rand_core::{OsRng, RngCore};
use tpm_commands::buffers::Tpm2bPrivate;
use tpm_commands::codec::{Marshal, Unmarshal};
use tpm_commands::structures::TpmtPublic;

use crate::error::{Error, Result};
use crate::keys::ops::{create_key, create_key_with, WrappedKey};
use crate::keys::rewrap::{import_duplicate, rewrap};
use crate::keys::srk::Srk;
use crate::keys::sshpub::authorized_keys_line;
use crate::keys::templates::{key_template, KeyAlgorithm, KeyUsage, SrkKind};
use crate::keys::tss2::Tss2Key;
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

/// The longest key label, in bytes (CKA_LABEL, the `--label` of `key add`): room
/// for any name a person gives a key, short enough for one line of a listing.
pub const MAX_KEY_LABEL: usize = 128;

/// Checks a key label: 1 to [`MAX_KEY_LABEL`] bytes of UTF-8, no control
/// characters (a tab or a newline would break `key list` and authorized_keys lines).
///
/// # Errors
/// [`Error::Usage`] saying what is wrong.
pub fn check_key_label(label: &str) -> Result<()> {
    if label.is_empty() || label.len() > MAX_KEY_LABEL {
        return Err(Error::Usage(format!(
            "a key label must be 1 to {MAX_KEY_LABEL} bytes long (this one has {})",
            label.len()
        )));
    }
    if label.chars().any(char::is_control) {
        return Err(Error::Usage(format!(
            "the key label {label:?} holds a control character (tab, newline, …); use printable characters"
        )));
    }
    Ok(())
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

pub use crate::connection::Connected;

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
            if rec.algorithms.is_none() {
                rec.algorithms = Some(crate::tpm_facts::algorithm_names(&mut tpm)?);
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
            crate::keys::persist::make_srk_persistent(&mut tpm, &mut srk)?;
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
            algorithms: Some(crate::tpm_facts::algorithm_names(&mut tpm)?),
            lockout: None,
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
        let (tpm, srk) = self.connect_srk()?;
        Connected::start(tpm, srk)
    }

    /// As [`App::connect`], with the SRK taken from the store when it is
    /// persistent and its public area is recorded ([`App::connect_srk_pinned`]):
    /// the session is then the only TPM command.
    ///
    /// # Errors
    /// As [`App::connect_srk_pinned`]; TPM errors.
    pub fn connect_pinned(&self) -> Result<Connected> {
        let (tpm, srk) = self.connect_srk_pinned()?;
        Connected::start(tpm, srk)
    }

    /// `tpmkey token add`: the seals are made in the TPM, then the token is
    /// written whole (see [`Store::create_token`]): that is the moment it exists.
    /// With a persistent SRK the user seal is then also made persistent, the
    /// handle recorded first (`pending_seal_handle`); a failure there
    /// leaves a working token that loads its seal from the store.
    ///
    /// # Errors
    /// An existing label; TPM errors; a full disk (then nothing is left: no token
    /// directory, no temporary file, nothing persistent in the TPM).
    pub fn token_add(&self, label: &str, pins: Option<(&[u8], &[u8])>) -> Result<()> {
        crate::store::check_name("token label", label)?;
        let lock = self.store.lock()?;
        self.store.sweep(&lock);
        if self.store.token_labels()?.iter().any(|l| l == label) {
            return Err(Error::Usage(format!(
                "a token labelled {label:?} exists already"
            )));
        }
        let mut c = self.connect()?;
        let t = token::create_token(&mut c.tpm, &c.srk, &mut c.session, pins)?;
        let target = if pins.is_some() {
            self.seal_target(&mut c)
        } else {
            None
        };
        let mut rec = TokenRecord {
            version: FORMAT_VERSION,
            label: label.to_string(),
            no_pin: pins.is_none(),
            user_seal: Some(wrap_record(&t.user_seal)?),
            so_seal: t.so_seal.as_ref().map(wrap_record).transpose()?,
            user_seal_handle: None,
            pending_seal_handle: target,
            created: now(),
            user_pin_failures: 0,
            so_pin_failures: 0,
        };
        self.store
            .create_token(&rec)
            .map_err(|e| Error::Usage(format!("token {label:?} not added: {e}")))?;
        if let Some(h) = target {
            self.persist_user_seal(&mut c, &mut rec, &t.user_seal, h);
        }
        Ok(())
    }

    /// A free handle for a user seal, when keeping it persistent is worth it (the
    /// SRK is persistent too: a transient SRK is derived again by every process, and
    /// a login would not gain). None when the TPM has no room or cannot be asked.
    fn seal_target(&self, c: &mut Connected) -> Option<u32> {
        if !c.srk.persistent {
            return None;
        }
        crate::keys::persist::free_handle(&mut c.tpm, crate::keys::persist::TOKEN_SEALS)
            .ok()
            .flatten()
            .map(|h| h.0)
    }

    /// Makes `seal` (the user seal of `t`, whose record already names `handle` as
    /// pending and is on disk) persistent at `handle`, then records it as the
    /// token's. Best effort and never an error: the token works from its blob
    /// either way. When the TPM's answer is lost the pending handle stays recorded
    /// for [`App::settle_pending`]; when the record cannot be written (a full disk)
    /// the persistent copy is removed again.
    fn persist_user_seal(
        &self,
        c: &mut Connected,
        t: &mut TokenRecord,
        seal: &WrappedKey,
        handle: u32,
    ) {
        let h = tpm_commands::constants::TpmHandle(handle);
        match crate::keys::persist::persist_at(&mut c.tpm, &c.srk, seal, h) {
            Ok(true) => {
                t.user_seal_handle = Some(handle);
                t.pending_seal_handle = None;
                if self.store.write_token(t).is_err() {
                    // Undone; the pending entry still on disk is settled later.
                    let _ = crate::keys::persist::evict(&mut c.tpm, h, seal);
                    t.user_seal_handle = None;
                    t.pending_seal_handle = Some(handle);
                }
            }
            Ok(false) => {
                // No room (or the handle was taken meanwhile): nothing was made.
                t.pending_seal_handle = None;
                let _ = self.store.write_token(t);
            }
            // Unknown whether it was made: the record keeps the handle as pending.
            Err(_) => {}
        }
    }

    /// Settles a token's pending seal handle (left by a process killed, or cut off
    /// from the TPM, while making its user seal persistent): taken as the token's
    /// when it holds this user seal (same Name), else forgotten. Call with the
    /// store lock held; `t` is updated and written.
    ///
    /// # Errors
    /// Transport errors (the TPM cannot say), store errors.
    fn settle_pending(&self, c: &mut Connected, t: &mut TokenRecord) -> Result<()> {
        let Some(h) = t.pending_seal_handle else {
            return Ok(());
        };
        let handle = tpm_commands::constants::TpmHandle(h);
        let seal = match t.user_seal.as_ref() {
            Some(s) if crate::keys::persist::TOKEN_SEALS.contains(&h) => {
                Some(unwrap_record(s, &self.token_path(&t.label))?)
            }
            _ => None,
        };
        let ours = match &seal {
            Some(seal) => crate::keys::persist::holds(&mut c.tpm, handle, seal)?,
            None => false,
        };
        match (ours, t.user_seal_handle, &seal) {
            (true, None, _) => t.user_seal_handle = Some(h),
            (true, Some(committed), Some(seal)) if committed != h => {
                // Two copies (cannot happen by the steps above): keep one.
                crate::keys::persist::evict(&mut c.tpm, handle, seal)?;
            }
            _ => {}
        }
        t.pending_seal_handle = None;
        self.store.write_token(t)?;
        Ok(())
    }

    /// Settles `label`'s pending seal handle, if it has one, under the store lock.
    /// Best effort (a login calls it; errors leave it for the next process).
    fn settle_pending_locked(&self, c: &mut Connected, label: &str) {
        let Ok(_lock) = self.store.lock() else { return };
        if let Ok(mut t) = self.store.read_token(label) {
            let _ = self.settle_pending(c, &mut t);
        }
    }

    /// Puts a new user seal in place of the old one (PIN change, SO reset,
    /// C_InitPIN), with the store lock held and `t` settled, in steps that leave
    /// either the old PIN working or the new one, never both and never a
    /// persistent seal that the record does not name:
    /// 1. the old persistent copy leaves the TPM (if the TPM refuses or cannot be
    ///    asked, nothing changes: an error);
    /// 2. the record is written with the new seal and, as pending, the handle the
    ///    new seal will go to: this is the change (a full disk: an error, nothing
    ///    changed, the old seal works from its blob);
    /// 3. the new seal is made persistent there, best effort.
    ///
    /// # Errors
    /// As in steps 1 and 2; the message says that the PIN was not changed.
    fn replace_user_seal(
        &self,
        c: &mut Connected,
        t: &mut TokenRecord,
        new_seal: &WrappedKey,
    ) -> Result<()> {
        let label = t.label.clone();
        let not_changed = |e: &dyn std::fmt::Display| {
            Error::Usage(format!(
                "the user PIN of token {label:?} was not changed: {e}"
            ))
        };
        if let (Some(h), Some(old)) = (t.user_seal_handle, t.user_seal.as_ref()) {
            let old = unwrap_record(old, &self.token_path(&t.label))?;
            let h = tpm_commands::constants::TpmHandle(h);
            match crate::keys::persist::evict(&mut c.tpm, h, &old).map_err(|e| not_changed(&e))? {
                crate::keys::persist::Evicted::Removed | crate::keys::persist::Evicted::NotThere => {}
                crate::keys::persist::Evicted::Refused => {
                    return Err(not_changed(&format!(
                        "the TPM refused to remove the old user seal at 0x{:08x} (TPM2_EvictControl; does the owner hierarchy have a password?)",
                        h.0
                    )))
                }
            }
        }
        let target = self.seal_target(c);
        let mut next = t.clone();
        next.user_seal = Some(wrap_record(new_seal)?);
        next.user_seal_handle = None;
        next.pending_seal_handle = target;
        self.store.write_token(&next).map_err(|e| not_changed(&e))?;
        *t = next;
        if let Some(h) = target {
            self.persist_user_seal(c, t, new_seal, h);
        }
        Ok(())
    }

    /// Drops a persistent handle that does not hold the token's user seal from its
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

    /// `tpmkey token rm`: the token's persistent user seal (and a pending one)
    /// leaves the TPM first, then the token and its keys leave the store, whole.
    /// Only handles the token's record names are touched, and only when they hold
    /// its seal. When the TPM cannot be reached or refuses, nothing is removed,
    /// unless `force`: then the token goes, and the returned note says what stays
    /// behind (for the user to see).
    ///
    /// # Errors
    /// Unknown token; store errors; a TPM error (then nothing was removed).
    pub fn token_rm(&self, label: &str, force: bool) -> Result<Option<String>> {
        crate::store::check_name("token label", label)?;
        let lock = self.store.lock()?;
        self.store.sweep(&lock);
        let t = match self.store.read_token(label) {
            Ok(t) => t,
            // A token whose record is unreadable: it can be removed by force, not
            // knowing which persistent seal (if any) it had.
            Err(e) if force && self.store.token_labels()?.iter().any(|l| l == label) => {
                self.store.remove_token(label)?;
                return Ok(Some(format!(
                    "its record could not be read ({e}), so a persistent seal it may have had stays in the TPM (see `tpm2_getcap handles-persistent`)"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let handles: Vec<u32> = [t.user_seal_handle, t.pending_seal_handle]
            .into_iter()
            .flatten()
            .filter(|h| crate::keys::persist::TOKEN_SEALS.contains(h))
            .collect();
        let mut left = None;
        if let (false, Some(seal)) = (handles.is_empty(), t.user_seal.as_ref()) {
            let seal = unwrap_record(seal, &self.token_path(label))?;
            let r = self.connect_srk().and_then(|(mut tpm, _)| {
                for &h in &handles {
                    let handle = tpm_commands::constants::TpmHandle(h);
                    if crate::keys::persist::evict(&mut tpm, handle, &seal)?
                        == crate::keys::persist::Evicted::Refused
                    {
                        return Err(Error::Usage(
                            "the TPM refused to remove it (TPM2_EvictControl; does the owner hierarchy have a password?)".into(),
                        ));
                    }
                }
                Ok(())
            });
            if let Err(e) = r {
                let at: Vec<String> = handles.iter().map(|h| format!("0x{h:08x}")).collect();
                let at = at.join(", ");
                if !force {
                    return Err(Error::Usage(format!(
                        "token {label:?} not removed: its persistent user seal at {at} could not be removed from the TPM ({e}); nothing was changed. Fix the TPM connection and try again, or `tpmkey token rm --force` to remove the token and leave the seal (then remove it with `tpm2_evictcontrol -C o -c HANDLE`)"
                    )));
                }
                left = Some(format!(
                    "its user seal may stay persistent at {at} ({e}); remove it with `tpm2_evictcontrol -C o -c HANDLE`"
                ));
            }
        }
        self.store.remove_token(label)?;
        Ok(left)
    }

    /// The path of a token's file, for error messages.
    pub fn token_path(&self, label: &str) -> PathBuf {
        self.store
            .root()
            .join("tokens")
            .join(label)
            .join("token.json")
    }

    /// The path of a key's file, for error messages.
    pub fn key_path(&self, token: &str, id: &str) -> PathBuf {
        self.store
            .root()
            .join("tokens")
            .join(token)
            .join("keys")
            .join(format!("{id}.json"))
    }

    /// The key labelled `key_label` in token `token_label`. Unreadable key files
    /// are skipped (and named when no readable key matches); two keys with the
    /// label (made by an older tpmkey, or by hand) are an error naming their ids,
    /// never a silent pick.
    ///
    /// # Errors
    /// Unknown token, no such key, an ambiguous label.
    pub fn find_key(&self, token_label: &str, key_label: &str) -> Result<KeyRecord> {
        let (keys, bad) = self.store.read_keys(token_label)?;
        let mut found: Vec<KeyRecord> = keys.into_iter().filter(|k| k.label == key_label).collect();
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => {
                let unread = if bad.is_empty() {
                    String::new()
                } else {
                    let names: Vec<String> = bad.iter().map(ToString::to_string).collect();
                    format!("; key files that could not be read: {}", names.join("; "))
                };
                Err(Error::Usage(format!(
                    "token {token_label:?} has no key labelled {key_label:?} (see `tpmkey key list`){unread}"
                )))
            }
            n => {
                let ids: Vec<&str> = found.iter().map(|k| k.id.as_str()).collect();
                Err(Error::Usage(format!(
                    "token {token_label:?} has {n} keys labelled {key_label:?} (ids {}); remove the extra ones with `tpmkey key rm --token {token_label} --id ID`",
                    ids.join(", ")
                )))
            }
        }
    }

    /// `tpmkey key rm`: removes the key labelled `label`, or the one with key id
    /// `id` (hex). Returns the removed key's record.
    ///
    /// # Errors
    /// Unknown token or key, an ambiguous label, store errors.
    pub fn key_rm(
        &self,
        token_label: &str,
        label: Option<&str>,
        id: Option<&str>,
    ) -> Result<KeyRecord> {
        let _lock = self.store.lock()?;
        let k = match (label, id) {
            (Some(l), None) => self.find_key(token_label, l)?,
            (None, Some(id)) => {
                let id = id.to_ascii_lowercase();
                let (keys, _) = self.store.read_keys(token_label)?;
                keys.into_iter()
                    .find(|k| k.id == id || k.shown_id() == id)
                    .ok_or_else(|| {
                        Error::Usage(format!("token {token_label:?} has no key with id {id}"))
                    })?
            }
            _ => {
                return Err(Error::Usage(
                    "name the key with --label or with --id".into(),
                ))
            }
        };
        self.store.remove_key(token_label, &k.id)?;
        Ok(k)
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
    ///
    /// A PIN the TPM checked is counted for the token's PIN flags (see
    /// `App::count_pin`); the no-PIN token's empty one is not.
    pub fn unseal_token(
        &self,
        c: &mut Connected,
        label: &str,
        pin: &[u8],
        so: bool,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let checks_pin = so || !self.store.read_token(label)?.no_pin;
        let r = self.unseal_token_uncounted(c, label, pin, so);
        if checks_pin {
            self.count_pin(c, label, so, r)
        } else {
            r
        }
    }

    /// Records the outcome of a PIN check the TPM made for token `label`: a right
    /// PIN clears the token's count of failures, a refused one (wrong, or not
    /// checked in lockout) adds one and reads the TPM's dictionary-attack
    /// counters (one TPM2_GetCapability), so that the PKCS#11 PIN flags
    /// (COUNT_LOW, FINAL_TRY, LOCKED) show what the CLI and the module did alike.
    /// Best effort: a store that cannot be written leaves the flags behind, never
    /// the operation. Takes the store lock: never call it with the lock held.
    fn count_pin<T>(&self, c: &mut Connected, label: &str, so: bool, r: Result<T>) -> Result<T> {
        use tpm_commands::rc::ResponseCode as Rc;
        let refused = match &r {
            Ok(_) => false,
            Err(Error::Tpm { rc, .. })
                if matches!(rc.base(), Rc::AUTH_FAIL | Rc::BAD_AUTH | Rc::LOCKOUT) =>
            {
                true
            }
            Err(Error::Lockout { .. }) => true,
            // Anything else says nothing about the PIN.
            Err(_) => return r,
        };
        let _ = self.note_pin(label, so, !refused);
        if refused {
            if let Ok(l) = crate::tpm_facts::read_lockout(&mut c.tpm) {
                let _ = self.note_lockout(l);
            }
        }
        r
    }

    fn unseal_token_uncounted(
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
        if !so && t.pending_seal_handle.is_some() {
            // Left by a process that was making the user seal persistent.
            self.settle_pending_locked(c, label);
        }
        let t = if !so && t.pending_seal_handle.is_some() {
            self.store.read_token(label)?
        } else {
            t
        };
        let persistent = if so { None } else { t.user_seal_handle };
        let r = match persistent {
            Some(h) if crate::keys::persist::TOKEN_SEALS.contains(&h) => {
                let h = tpm_commands::constants::TpmHandle(h);
                match token::login_persistent(&mut c.tpm, h, &mut c.session, &seal, pin) {
                    // Whatever the TPM answered: if the handle does not hold this
                    // seal (evicted, taken over, or edited in the record), the
                    // answer says nothing about the PIN. The blob decides, and the
                    // handle is forgotten.
                    Err(e @ Error::Tpm { .. }) => {
                        match crate::keys::persist::holds(&mut c.tpm, h, &seal) {
                            Ok(true) => Err(e),
                            Ok(false) => {
                                self.forget_user_seal_handle(label, h.0);
                                token::login(&mut c.tpm, &c.srk, &mut c.session, &seal, pin)
                            }
                            // The TPM would not say what is there: the blob
                            // decides, and the handle is kept for later.
                            Err(Error::Tpm { .. }) => {
                                token::login(&mut c.tpm, &c.srk, &mut c.session, &seal, pin)
                            }
                            Err(other) => Err(other),
                        }
                    }
                    other => other,
                }
            }
            // A handle outside the token-seal range is never used (nor evicted).
            Some(h) => {
                self.forget_user_seal_handle(label, h);
                token::login(&mut c.tpm, &c.srk, &mut c.session, &seal, pin)
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

    /// `tpmkey key add --usage`: as [`App::key_add`], for a key that signs,
    /// decrypts (RSA) or does ECDH (ECC) as `usage` says; the TPM object's
    /// `sign` and `decrypt` attributes follow it.
    ///
    /// # Errors
    /// As [`App::key_add`].
    pub fn key_add_for(
        &self,
        token_label: &str,
        label: &str,
        alg: KeyAlgorithm,
        usage: KeyUsage,
        user_pin: &[u8],
    ) -> Result<KeyRecord> {
        self.add_key(token_label, label, alg, user_pin, false, |c, auth| {
            let public = key_template(alg, usage, auth.is_empty());
            create_key_with(&mut c.tpm, &c.srk, &mut c.session, public, auth)
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
        self.key_import_for(token_label, label, key, KeyUsage::SIGN, user_pin)
    }

    /// `tpmkey key import --usage`: as [`App::key_import`], the imported key
    /// doing what `usage` says.
    ///
    /// # Errors
    /// As [`App::key_import`].
    pub fn key_import_for(
        &self,
        token_label: &str,
        label: &str,
        key: &crate::keys::import::PrivateKey,
        usage: KeyUsage,
        user_pin: &[u8],
    ) -> Result<KeyRecord> {
        let alg = match key {
            crate::keys::import::PrivateKey::Ecc { alg, .. }
            | crate::keys::import::PrivateKey::Rsa { alg, .. } => *alg,
        };
        self.add_key(token_label, label, alg, user_pin, true, |c, auth| {
            crate::keys::import::import_key_for(
                &mut c.tpm,
                &c.srk,
                &mut c.session,
                key,
                usage,
                auth,
            )
        })
    }

    /// What a recorded key may do, from its public area's `sign` and `decrypt`
    /// attributes (None when the record does not parse).
    pub fn key_usage(rec: &KeyRecord) -> Option<KeyUsage> {
        let w = unwrap_record(&rec.blob, std::path::Path::new(&rec.id)).ok()?;
        Some(KeyUsage::of(w.public.object_attributes))
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
        check_key_label(label)?;
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
        check_key_label(label)?;
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
        let r = self.change_pin_locked(c, label, old, new, so);
        self.count_pin(c, label, so, r)
    }

    fn change_pin_locked(
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
        if !so {
            self.settle_pending(c, &mut t)?;
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
            return self.store.write_token(&t).map_err(|e| {
                Error::Usage(format!(
                    "the SO PIN of token {label:?} was not changed: {e}"
                ))
            });
        }
        self.replace_user_seal(c, &mut t, &new_seal)
    }

    /// Replaces a token's user seal (a new user PIN set by the SO, C_InitPIN): the
    /// old persistent seal leaves the TPM, then one write of the token record makes
    /// the change, then the new seal is made persistent (best effort); an error
    /// before that write changes nothing and says so.
    ///
    /// # Errors
    /// Store errors; TPM errors before the change.
    pub fn set_user_seal(&self, c: &mut Connected, label: &str, seal: &WrappedKey) -> Result<()> {
        let _lock = self.store.lock()?;
        let mut t = self.store.read_token(label)?;
        self.settle_pending(c, &mut t)?;
        self.replace_user_seal(c, &mut t, seal)
    }

    /// `tpmkey pin reset`: the SO PIN unseals the token secret, which is sealed
    /// again under a new user PIN.
    ///
    /// # Errors
    /// Wrong SO PIN, lockout, a no-PIN token.
    pub fn pin_reset(&self, label: &str, so_pin: &[u8], new_user: &[u8]) -> Result<()> {
        let mut c = self.connect()?;
        let r = self.pin_reset_locked(&mut c, label, so_pin, new_user);
        self.count_pin(&mut c, label, true, r)
    }

    fn pin_reset_locked(
        &self,
        c: &mut Connected,
        label: &str,
        so_pin: &[u8],
        new_user: &[u8],
    ) -> Result<()> {
        let _lock = self.store.lock()?;
        let mut t = self.store.read_token(label)?;
        let path = self.token_path(label);
        let so = unwrap_record(
            t.so_seal
                .as_ref()
                .ok_or_else(|| Error::Usage(format!("token {label:?} has no SO PIN")))?,
            &path,
        )?;
        self.settle_pending(c, &mut t)?;
        let new_seal = token::reset_pin(&mut c.tpm, &c.srk, &mut c.session, &so, so_pin, new_user)?;
        self.replace_user_seal(c, &mut t, &new_seal)
    }

    /// The label of `token`, checked to exist, or every token's when it is None.
    ///
    /// # Errors
    /// An unknown token; the token directory cannot be listed.
    pub(crate) fn tokens_named(&self, token: Option<&str>) -> Result<Vec<String>> {
        match token {
            Some(t) => {
                self.store.read_token(t)?;
                Ok(vec![t.to_string()])
            }
            None => Ok(self.store.token_labels()?),
        }
    }

    /// Every key, with its token label (reads the store only; no TPM). A key file
    /// or a token's key directory that cannot be read hides only those keys: it is
    /// in the second list, for the caller to report.
    ///
    /// # Errors
    /// The store's token directory cannot be listed; an unknown `token`.
    pub fn key_list(&self, token: Option<&str>) -> Result<KeyListing> {
        let labels = self.tokens_named(token)?;
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for l in labels {
            match self.store.read_keys(&l) {
                Ok((keys, b)) => {
                    bad.extend(b);
                    out.extend(keys.into_iter().map(|k| (l.clone(), k)));
                }
                Err(e) => bad.push(e),
            }
        }
        Ok((out, bad))
    }

    /// authorized_keys lines for the selected keys (comment = key label), and what
    /// could not be read: a damaged key file or public area hides only that key.
    ///
    /// # Errors
    /// As [`App::key_list`].
    pub fn ssh_pubkeys(
        &self,
        token: Option<&str>,
        label: Option<&str>,
    ) -> Result<(Vec<String>, Vec<Error>)> {
        let (keys, bad) = self.key_list(token)?;
        let mut bad: Vec<Error> = bad.into_iter().map(Error::Store).collect();
        let mut lines = Vec::new();
        for (t, k) in keys
            .iter()
            .filter(|(_, k)| label.is_none_or(|l| k.label == l))
        {
            let line = unwrap_record(&k.blob, &self.key_path(t, &k.id))
                .and_then(|w| authorized_keys_line(&w.public, &k.label));
            match line {
                Ok(line) => lines.push(line),
                Err(e) => bad.push(e),
            }
        }
        Ok((lines, bad))
    }

    /// `tpmkey sign`: signs `data` with key `key_label` of token `token_label`
    /// (digest with `hash` on the host, then [`App::sign_digest`]).
    ///
    /// # Errors
    /// As [`App::sign_digest`].
    pub fn sign_data(
        &self,
        token_label: &str,
        key_label: &str,
        user_pin: &[u8],
        hash: crate::crypto::hash::HashAlg,
        data: &[u8],
    ) -> Result<Vec<u8>> {
        self.sign_digest(token_label, key_label, user_pin, hash, &hash.hash(&[data]))
    }

    /// The authValue of key `k` of `token_label`: empty for a key made without
    /// one, else HMAC(token secret, key id) with the secret unsealed by
    /// `user_pin` (`path` names the key file in errors).
    ///
    /// # Errors
    /// A wrong PIN, TPM errors, a corrupt id.
    fn key_auth_of(
        &self,
        c: &mut Connected,
        token_label: &str,
        k: &KeyRecord,
        path: &std::path::Path,
        user_pin: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        if k.empty_auth {
            return Ok(zeroize::Zeroizing::new(Vec::new()));
        }
        let secret = self.token_secret(c, token_label, user_pin)?;
        Ok(token::key_auth(&secret, &from_hex(&k.id, path)?))
    }

    /// Signs a `hash` digest with key `key_label` of token `token_label` (one
    /// TPM2_Sign: ECDSA or RSASSA), checks the signature in software against the
    /// key's public area, and returns it (ECDSA r || s, RSA PKCS#1 v1.5). The key's
    /// authValue is proven by HMAC in the salted session; it is never sent.
    ///
    /// # Errors
    /// Unknown token or key, wrong PIN, lockout, TPM errors, a signature that does
    /// not verify.
    pub fn sign_digest(
        &self,
        token_label: &str,
        key_label: &str,
        user_pin: &[u8],
        hash: crate::crypto::hash::HashAlg,
        digest: &[u8],
    ) -> Result<Vec<u8>> {
        use crate::keys::signature::{check_digest, encode, scheme_for, verify};
        check_digest(hash, digest)?;
        let k = self.find_key(token_label, key_label)?;
        let path = self.key_path(token_label, &k.id);
        let wrapped = unwrap_record(&k.blob, &path)?;
        let mut c = self.connect()?;
        let auth = self.key_auth_of(&mut c, token_label, &k, &path, user_pin)?;
        let scheme = scheme_for(&wrapped.public)?;
        let sig = c.sign(
            &wrapped,
            &auth,
            digest,
            scheme,
            tpm_commands::constants::TpmAlgId(hash.alg_id()),
        )?;
        let sig = encode(&wrapped.public, &sig)?;
        verify(&wrapped.public, hash, digest, &sig)?;
        Ok(sig)
    }

    /// `tpmkey key import` of a TSS2 PRIVATE KEY file (tpm2-openssl,
    /// tpm2-tss-engine, ssh-tpm-agent): the key must be one tpmkey can use
    /// ([`Tss2Key::usable_algorithm`]) under this store's SRK
    /// ([`Tss2Key::check_parent`]). An importable key is first made loadable with
    /// TPM2_Import ([`import_duplicate`]). It is loaded, and a copy of it with tpmkey's
    /// authValue is made by TPM2_ObjectChangeAuth ([`rewrap`]): `old_auth` (the
    /// file's password, empty for an emptyAuth key) is proven by HMAC and the new
    /// authValue goes encrypted. The key never leaves the TPM, its public key stays
    /// the original's, and the file keeps working with its old password. The
    /// record says "imported" unless the TPM made the key (fixedTPM and
    /// sensitiveDataOrigin set).
    ///
    /// # Errors
    /// A key tpmkey cannot use or another parent (named), a blob that does not
    /// load here, a wrong password, lockout; as [`App::add_key_on`]. Nothing is
    /// written to the store on any error.
    pub fn key_import_tss2(
        &self,
        token_label: &str,
        label: &str,
        file: &Tss2Key,
        old_auth: &[u8],
        user_pin: &[u8],
    ) -> Result<KeyRecord> {
        use tpm_commands::attributes::TpmaObject;
        let alg = file.usable_algorithm()?;
        let original = WrappedKey {
            private: file.private.clone(),
            public: file.public.clone(),
        };
        let made_in_tpm = file
            .public
            .object_attributes
            .contains(TpmaObject::FIXED_TPM | TpmaObject::SENSITIVE_DATA_ORIGIN);
        let mut c = self.connect()?;
        file.check_parent(c.srk.kind)?;
        self.add_key_on(
            &mut c,
            token_label,
            label,
            None,
            alg,
            Unlock::Pin(user_pin),
            !made_in_tpm,
            |c, auth| {
                let loadable = match &file.secret {
                    Some(seed) => import_duplicate(
                        &mut c.tpm,
                        &c.srk,
                        &mut c.session,
                        &file.public,
                        &file.private,
                        seed,
                    )
                    .map_err(|e| explain_tss2_import(c, e))?,
                    None => original,
                };
                rewrap(
                    &mut c.tpm,
                    &c.srk,
                    &mut c.session,
                    &loadable,
                    old_auth,
                    auth,
                )
                .map_err(|e| explain_tss2_import(c, e))
            },
        )
    }

    /// `tpmkey key export --tss2`: a TSS2 PRIVATE KEY file (PEM) for a key of the
    /// store — a copy of the key under the same SRK with `password` as its
    /// authValue (empty: an emptyAuth key), made by TPM2_ObjectChangeAuth under the
    /// token's login ([`rewrap`]: the key's tpmkey authValue proven by HMAC, the new
    /// password an encrypted parameter). The store's key keeps its authorization.
    /// The file names the SRK as its parent: 0x81000001 when it is persistent, else
    /// the owner-hierarchy primary 0x40000001 (with `rsaParent` for an RSA SRK).
    ///
    /// # Errors
    /// Unknown token or key, wrong PIN, lockout, TPM errors.
    pub fn key_export_tss2(
        &self,
        token_label: &str,
        key_label: &str,
        user_pin: &[u8],
        password: &[u8],
    ) -> Result<Tss2Export> {
        use tpm_commands::attributes::TpmaObject;
        use tpm_commands::constants::TpmHandle;
        let k = self.find_key(token_label, key_label)?;
        let path = self.key_path(token_label, &k.id);
        let wrapped = unwrap_record(&k.blob, &path)?;
        let mut c = self.connect()?;
        let auth = self.key_auth_of(&mut c, token_label, &k, &path, user_pin)?;
        let copy = rewrap(
            &mut c.tpm,
            &c.srk,
            &mut c.session,
            &wrapped,
            &auth,
            password,
        )?;
        let (parent, rsa_parent) = if c.srk.persistent {
            (TpmHandle::SRK, false)
        } else {
            (TpmHandle::RH_OWNER, c.srk.kind == SrkKind::Rsa)
        };
        let no_da = copy.public.object_attributes.contains(TpmaObject::NO_DA);
        let file = Tss2Key::loadable(
            copy.public,
            copy.private,
            parent,
            rsa_parent,
            password.is_empty(),
        );
        Ok(Tss2Export {
            pem: file.to_pem()?,
            no_da,
        })
    }
}

/// A key exported as a TSS2 PRIVATE KEY file.
pub struct Tss2Export {
    /// The PEM file.
    pub pem: String,
    /// The key is marked noDA (keys of a no-PIN token): the TPM does not count
    /// wrong passwords against its dictionary-attack lockout.
    pub no_da: bool,
}

/// Says what a failed TSS2 import means: the blob does not load here (TPM2_Load),
/// or the file's password is wrong (TPM2_ObjectChangeAuth).
fn explain_tss2_import(c: &mut Connected, e: Error) -> Error {
    use tpm_commands::constants::TpmCc;
    use tpm_commands::rc::ResponseCode as Rc;
    match e {
        Error::Tpm { cc: TpmCc::LOAD, rc } => Error::Usage(format!(
            "the key file does not load under this TPM's storage root key (TPM2_Load: {rc}): it was made on another TPM or under another parent, or it is damaged; nothing was added to the store"
        )),
        Error::Tpm { cc: TpmCc::IMPORT, rc } => Error::Usage(format!(
            "the importable key is not wrapped for this TPM's storage root key (TPM2_Import: {rc}): it was made for another TPM or parent, or it is damaged; nothing was added to the store"
        )),
        Error::Integrity { cc: TpmCc::LOAD, what } => Error::Usage(format!(
            "the TPM loaded the key file as another key than its public part describes ({what}); nothing was added to the store"
        )),
        Error::Tpm { cc: TpmCc::OBJECT_CHANGE_AUTH, rc }
            if matches!(rc.base(), Rc::AUTH_FAIL | Rc::BAD_AUTH) =>
        {
            Error::Usage(format!(
                "wrong password for the key file ({rc}); nothing was added to the store (the TPM counts wrong passwords of keys without noDA towards its dictionary-attack lockout)"
            ))
        }
        Error::Tpm { rc, .. } if rc.base() == Rc::LOCKOUT => {
            let da = crate::info::gather(&mut c.tpm).map(|i| i.da).ok();
            Error::Lockout {
                failed: da.as_ref().map_or(0, |d| d.failed_tries),
                max: da.as_ref().map_or(0, |d| d.max_tries),
                interval: da.as_ref().map_or(0, |d| d.recovery_time),
            }
        }
        other => other,
    }
}
