//! The key store: one directory (`TPMKEY_STORE`, else `$XDG_DATA_HOME/tpmkey`, else
//! `~/.local/share/tpmkey`) holding only public data and TPM-wrapped blobs.
//!
//! Layout (format version 1, JSON, hex for binary):
//! - `store.json`: `{ "version": 1, "srk": { "kind": "ecc"|"rsa", "name": hex } }`,
//!   the SRK whose Name every key was made under (pinned); optional `tpm` (maker,
//!   vendor, firmware), `algorithms` (the key algorithms TPM2_TestParms accepted:
//!   `["ecc256", "rsa2048", …]`) and `lockout` (`counter`, `max_tries`,
//!   `interval`, `read_at`: the dictionary-attack state last read).
//! - `tokens/<label>/token.json`: one token: its seals, and where the user seal is
//!   persistent (`user_seal_handle`; `pending_seal_handle` while it is being made
//!   so, see [`TokenRecord`]); optional `user_pin_failures` and `so_pin_failures`
//!   count wrong PINs since the last right one.
//! - `tokens/<label>/keys/<id hex>.json`: one key per file, so processes adding keys
//!   at the same time never overwrite each other's entries.
//! - `tokens/<label>/objects/<uid>.json`: one certificate (CKO_CERTIFICATE, X.509)
//!   or data object (CKO_DATA) per file, named by a random 16-hex-digit uid (a
//!   CKA_ID need not be unique). A public object's value (the certificate's DER,
//!   the data) is in clear: it is public data. A private object's value is
//!   encrypted and authenticated under a key derived from the token secret (which
//!   only the TPM unseals, with the user PIN on a PIN token): see
//!   [`crate::crypto::at_rest`]. Labels, CKA_ID, CKA_APPLICATION and
//!   CKA_OBJECT_ID are never secret.
//! - `lock`: `flock` target serializing every change between processes.
//! - `tokens/.new-<label>-…`, `tokens/.rm-<label>-…`: a token being made or
//!   removed (made in full, then renamed into place; renamed away, then deleted), so
//!   a token is there whole or not at all. Left only by a killed process, and
//!   deleted by the next `token add` or `token rm` (names starting with '.' are
//!   never token labels).
//!
//! Directories are 0700, files 0600. Every write is a temp file, fsync, rename,
//! fsync of the directory. A store written by a newer format is refused, never
//! rewritten. A corrupt file gives an error naming it and does not hide the rest.
//! Every file is read as a regular file of at most 1 MiB, not through a link
//! ([`crate::files`]).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::files::{read_file, FileError, Links};
use crate::settings::BadSetting;

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Store errors, each naming the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// I/O on a store path.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file that does not parse.
    #[error(
        "{path}: corrupt or truncated store file ({reason}); move it away to continue without it"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Written by a newer tpmkey.
    #[error("{path}: written by a newer tpmkey (store format {found}, this one reads {FORMAT_VERSION}); upgrade tpmkey, the store is left untouched")]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
    /// A store file that is not a regular file, or too large to be one of ours.
    #[error(transparent)]
    File(#[from] FileError),
    /// No home directory to put the default store in.
    #[error("no store location: set TPMKEY_STORE, XDG_DATA_HOME or HOME")]
    NoLocation,
    /// Another process kept the store locked past the bound.
    #[error("{path}: the key store is being changed by {holder}, which did not finish within {waited_ms} ms (TPMKEY_TIMEOUT=seconds waits longer); try again when it is done, or end it if it hangs")]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// "process 1234 (tpmkey)", or a sentence saying it is not known.
        holder: String,
        /// How long this process waited.
        waited_ms: u128,
    },
    /// A bad `TPMKEY_TIMEOUT`.
    #[error(transparent)]
    Setting(#[from] BadSetting),
    /// A name that cannot be a token label or key id.
    #[error("invalid {what} {value:?}: use 1-64 letters, digits, '.', '_' or '-'")]
    BadName {
        /// "token label", …
        what: &'static str,
        /// The value.
        value: String,
    },
}

type Result<T> = std::result::Result<T, StoreError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks a token label or key file name: no path separators, no dot files.
pub fn check_name(what: &'static str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && !value.starts_with('.')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadName {
            what,
            value: value.to_string(),
        })
    }
}

/// The pinned SRK.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SrkRecord {
    /// "ecc" or "rsa".
    pub kind: String,
    /// Its Name, hex.
    pub name: String,
    /// It lives at the persistent handle 0x81000001 (made so by `init`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub persistent: bool,
    /// Its public area (TPMT_PUBLIC, hex): with it a process salts sessions to the
    /// SRK without first asking the TPM for it (TPM2_ReadPublic). A TPM holding
    /// another key there cannot answer such a session, so the pin still holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<String>,
}

/// `store.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreRecord {
    /// Format version.
    pub version: u32,
    /// The pinned SRK, once `init` ran.
    pub srk: Option<SrkRecord>,
    /// Who made the TPM, recorded by `init` so that listing tokens (PKCS#11
    /// C_GetTokenInfo) can name it without a TPM command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<TpmRecord>,
    /// The key algorithms this TPM can make ("ecc256", "rsa2048", …), asked with
    /// TPM2_TestParms by `init` (or when missing, by the first process that talks
    /// to the TPM anyway), so that PKCS#11 C_GetMechanismInfo needs no TPM command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<String>>,
    /// The TPM's dictionary-attack state when it was last read (after a failed
    /// PIN), so that C_GetTokenInfo can warn before the TPM locks out without
    /// asking it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockout: Option<LockoutRecord>,
}

/// The TPM's dictionary-attack counters (Part 1 §19.8.6; TPM_PT_LOCKOUT_COUNTER,
/// TPM_PT_MAX_AUTH_FAIL, TPM_PT_LOCKOUT_INTERVAL) at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockoutRecord {
    /// Failed authorizations counted.
    pub counter: u32,
    /// Failures that lock the TPM out.
    pub max_tries: u32,
    /// Seconds after which one failure is forgiven (0: only lockoutAuth resets).
    pub interval: u32,
    /// When it was read, seconds since the epoch.
    pub read_at: u64,
}

/// The TPM's maker, model and firmware (TPM_PT_MANUFACTURER, VENDOR_STRING_*,
/// FIRMWARE_VERSION_*).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TpmRecord {
    /// "IBM", "INTC", "STM ", …
    pub manufacturer: String,
    /// The vendor string, e.g. "SWTPM".
    pub vendor: String,
    /// Firmware version words.
    pub firmware: (u32, u32),
}

/// A TPM-wrapped object (private and public areas, hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedRecord {
    /// TPM2B_PRIVATE contents, hex.
    pub private: String,
    /// TPMT_PUBLIC, hex.
    pub public: String,
}

/// `tokens/<label>/token.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Format version.
    pub version: u32,
    /// The label.
    pub label: String,
    /// A token with no PIN: its keys need no login.
    pub no_pin: bool,
    /// The token secret sealed under the user PIN.
    pub user_seal: Option<WrappedRecord>,
    /// The token secret sealed under the SO PIN.
    pub so_seal: Option<WrappedRecord>,
    /// Where the user seal is also kept persistent in the TPM (0x810001xx), so that
    /// a login unseals it without loading it first; absent when the TPM had no room
    /// (or for tokens made before), and then the blob above is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_seal_handle: Option<u32>,
    /// A persistent handle (0x810001xx) that may hold the user seal: written before
    /// TPM2_EvictControl puts it there, and replaced by `user_seal_handle` once it
    /// is. A process killed in between leaves it; the next one that changes or uses
    /// the token settles it: takes the handle when it holds this seal (same Name),
    /// else forgets it. No handle the store never recorded is ever evicted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_seal_handle: Option<u32>,
    /// Creation time, seconds since the epoch.
    pub created: u64,
    /// Wrong user PINs since the last right one (PKCS#11 CKF_USER_PIN_COUNT_LOW).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub user_pin_failures: u32,
    /// Wrong SO PINs since the last right one (CKF_SO_PIN_COUNT_LOW).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub so_pin_failures: u32,
}

/// `tokens/<label>/keys/<id>.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Format version.
    pub version: u32,
    /// The label.
    pub label: String,
    /// The key id (CKA_ID), hex.
    pub id: String,
    /// "ecc256", "rsa2048", …
    pub algorithm: String,
    /// The TPM-wrapped key.
    pub blob: WrappedRecord,
    /// True when the key was imported rather than made by the TPM.
    pub imported: bool,
    /// Creation time, seconds since the epoch.
    pub created: u64,
    /// The key's authValue is empty (keys of a no-PIN token): it signs with no
    /// session and no unseal. Absent in older files, whose keys derive it from the
    /// token secret.
    #[serde(default, skip_serializing_if = "is_false")]
    pub empty_auth: bool,
    /// The key's CKA_ID (hex) when it was changed after creation (PKCS#11
    /// C_SetAttributeValue: NSS sets it to a hash of the public key); `id` stays
    /// the file name and what the key's authValue is derived from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cka_id: Option<String>,
}

impl KeyRecord {
    /// The CKA_ID the key shows, hex.
    pub fn shown_id(&self) -> &str {
        self.cka_id.as_deref().unwrap_or(&self.id)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_true(b: &bool) -> bool {
    *b
}

fn yes() -> bool {
    true
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

/// A private object's value, encrypted at rest ([`crate::crypto::at_rest`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedRecord {
    /// The random nonce, hex.
    pub nonce: String,
    /// The AES-CFB ciphertext, hex.
    pub ciphertext: String,
    /// HMAC-SHA256 over uid, nonce and ciphertext, hex.
    pub mac: String,
}

/// `tokens/<label>/objects/<uid>.json`: a certificate or data object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    /// Format version.
    pub version: u32,
    /// The file name: 16 hex digits, random.
    pub uid: String,
    /// "certificate" (CKO_CERTIFICATE, CKC_X_509) or "data" (CKO_DATA).
    pub class: String,
    /// CKA_LABEL.
    pub label: String,
    /// CKA_ID, hex (certificates).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// CKA_APPLICATION (data objects).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub application: String,
    /// CKA_OBJECT_ID, DER hex (data objects).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub object_id: String,
    /// CKA_VALUE, hex: public objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// CKA_VALUE encrypted: private objects (CKA_PRIVATE true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<EncryptedRecord>,
    /// CKA_CERTIFICATE_CATEGORY.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub category: u64,
    /// CKA_TRUSTED.
    #[serde(default, skip_serializing_if = "is_false")]
    pub trusted: bool,
    /// CKA_START_DATE, YYYYMMDD or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub start_date: String,
    /// CKA_END_DATE, YYYYMMDD or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub end_date: String,
    /// CKA_MODIFIABLE.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub modifiable: bool,
    /// CKA_COPYABLE.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub copyable: bool,
    /// CKA_DESTROYABLE.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub destroyable: bool,
    /// Creation time, seconds since the epoch.
    pub created: u64,
}

impl ObjectRecord {
    /// CKO_CERTIFICATE.
    pub const CERTIFICATE: &'static str = "certificate";
    /// CKO_DATA.
    pub const DATA: &'static str = "data";
}

/// An open store directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// A held exclusive lock on the store; released on drop.
pub struct StoreLock {
    _lock: nix::fcntl::Flock<File>,
}

impl Store {
    /// The store location from the environment.
    ///
    /// # Errors
    /// No variable to derive it from.
    pub fn default_path() -> Result<PathBuf> {
        if let Some(p) = std::env::var_os("TPMKEY_STORE").filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(p));
        }
        if let Some(p) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(p).join("tpmkey"));
        }
        std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|h| PathBuf::from(h).join(".local/share/tpmkey"))
            .ok_or(StoreError::NoLocation)
    }

    /// Opens (creating with mode 0700 if needed) the store at `root`.
    ///
    /// # Errors
    /// I/O errors; a `store.json` that is corrupt or too new.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root.join("tokens"))
            .map_err(io(&root))?;
        let store = Store { root };
        store.read_record()?;
        Ok(store)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn record_path(&self) -> PathBuf {
        self.root.join("store.json")
    }

    fn token_dir(&self, label: &str) -> PathBuf {
        self.root.join("tokens").join(label)
    }

    /// Takes the store's exclusive lock, serializing changes between processes;
    /// waits for another process changing the store at most `TPMKEY_TIMEOUT`
    /// seconds (default 120).
    ///
    /// # Errors
    /// I/O errors; a bad `TPMKEY_TIMEOUT`; [`StoreError::Locked`] when the wait
    /// runs out.
    pub fn lock(&self) -> Result<StoreLock> {
        self.lock_within(crate::settings::answer_timeout()?)
    }

    /// [`Store::lock`] with an explicit bound on the wait.
    ///
    /// # Errors
    /// As [`Store::lock`].
    pub fn lock_within(&self, limit: Duration) -> Result<StoreLock> {
        let path = self.root.join("lock");
        // Non-blocking open: a FIFO put in its place fails at once (no reader) or
        // at the type check below, instead of waiting for a reader.
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(io(&path))?;
        if !file.metadata().map_err(io(&path))?.is_file() {
            return Err(StoreError::File(FileError::NotRegular {
                path,
                kind: "not a regular file",
            }));
        }
        let start = Instant::now();
        let mut delay = Duration::from_millis(2);
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(StoreLock { _lock: lock }),
                Err((back, Errno::EWOULDBLOCK)) => {
                    let waited = start.elapsed();
                    if waited >= limit {
                        return Err(StoreError::Locked {
                            holder: crate::holders::describe(&crate::holders::flock_holders(&back))
                                .unwrap_or_else(|| {
                                    "another process (not found in /proc/locks)".into()
                                }),
                            path,
                            waited_ms: waited.as_millis(),
                        });
                    }
                    std::thread::sleep(delay.min(limit - waited));
                    delay = (delay * 2).min(Duration::from_millis(50));
                    file = back;
                }
                Err((back, Errno::EINTR)) => file = back,
                Err((_, e)) => {
                    return Err(StoreError::Io {
                        path,
                        source: e.into(),
                    })
                }
            }
        }
    }

    /// Reads `store.json` (a fresh store if there is none).
    ///
    /// # Errors
    /// Corrupt or too new.
    pub fn read_record(&self) -> Result<StoreRecord> {
        let path = self.record_path();
        if absent(&path)? {
            return Ok(StoreRecord {
                version: FORMAT_VERSION,
                srk: None,
                tpm: None,
                algorithms: None,
                lockout: None,
            });
        }
        read_versioned(&path, |r: &StoreRecord| r.version)
    }

    /// Writes `store.json` atomically.
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_record(&self, r: &StoreRecord) -> Result<()> {
        write_atomic(&self.record_path(), r)
    }

    /// The labels of all tokens (directory names), sorted.
    ///
    /// # Errors
    /// I/O errors on the tokens directory.
    pub fn token_labels(&self) -> Result<Vec<String>> {
        let dir = self.root.join("tokens");
        let mut v: Vec<String> = fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| check_name("token label", n).is_ok())
            .collect();
        v.sort();
        Ok(v)
    }

    /// Reads one token.
    ///
    /// # Errors
    /// Missing, corrupt or too new.
    pub fn read_token(&self, label: &str) -> Result<TokenRecord> {
        check_name("token label", label)?;
        read_versioned(
            &self.token_dir(label).join("token.json"),
            |r: &TokenRecord| r.version,
        )
    }

    /// Rewrites an existing token's record atomically.
    ///
    /// # Errors
    /// Bad label, a token that does not exist, I/O errors (a full disk: the old
    /// record stays, no temporary file is left).
    pub fn write_token(&self, t: &TokenRecord) -> Result<()> {
        check_name("token label", &t.label)?;
        let dir = self.token_dir(&t.label);
        if !dir.is_dir() {
            return Err(StoreError::Io {
                path: dir,
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        write_atomic(&dir.join("token.json"), t)
    }

    /// Adds a new token whole or not at all: its directory is made under a
    /// temporary name (`tokens/.new-…`, with `keys/` and `token.json`), synced, then
    /// renamed into place, never over an existing token. On an error (a full disk)
    /// nothing is left behind. Call with the store lock held.
    ///
    /// # Errors
    /// Bad label, a token of that label, I/O errors.
    pub fn create_token(&self, t: &TokenRecord) -> Result<()> {
        check_name("token label", &t.label)?;
        let tokens = self.root.join("tokens");
        let staging = tokens.join(format!(".new-{}-{}", t.label, unique_suffix()));
        let made = (|| {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&staging)
                .map_err(io(&staging))?;
            fs::DirBuilder::new()
                .mode(0o700)
                .create(staging.join("keys"))
                .map_err(io(&staging))?;
            write_atomic(&staging.join("token.json"), t)?;
            sync_dir(&staging)?;
            // Under the store lock nothing else adds tokens: a free name stays free.
            let dest = self.token_dir(&t.label);
            if !absent(&dest)? {
                return Err(StoreError::Io {
                    path: dest,
                    source: std::io::ErrorKind::AlreadyExists.into(),
                });
            }
            fs::rename(&staging, &dest).map_err(io(&dest))?;
            sync_dir(&tokens)
        })();
        if made.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        made
    }

    /// Removes a token and its keys, whole: the directory is renamed away first
    /// (`tokens/.rm-…`, after which the token is gone), then deleted.
    ///
    /// # Errors
    /// I/O errors before the rename (then nothing was removed).
    pub fn remove_token(&self, label: &str) -> Result<()> {
        check_name("token label", label)?;
        let tokens = self.root.join("tokens");
        let dir = self.token_dir(label);
        let away = tokens.join(format!(".rm-{label}-{}", unique_suffix()));
        fs::rename(&dir, &away).map_err(io(&dir))?;
        sync_dir(&tokens)?;
        let _ = fs::remove_dir_all(&away);
        Ok(())
    }

    /// Deletes what a killed process left: `tokens/.new-*` and `tokens/.rm-*`
    /// directories of `token add` and `token rm`, and the temporary files of an
    /// interrupted write (`.NAME.tmp-*`). Call with the store lock held: every write
    /// happens under it, so such leftovers belong to no running process.
    pub fn sweep(&self, _lock: &StoreLock) {
        let tokens = self.root.join("tokens");
        let mut dirs = vec![self.root.clone(), tokens.clone()];
        if let Ok(entries) = fs::read_dir(&tokens) {
            for e in entries.filter_map(|e| e.ok()) {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(".new-") || name.starts_with(".rm-") {
                    let _ = fs::remove_dir_all(e.path());
                } else if !name.starts_with('.') {
                    dirs.push(e.path());
                    dirs.push(e.path().join("keys"));
                }
            }
        }
        for dir in dirs {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.filter_map(|e| e.ok()) {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') && name.contains(".tmp-") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    /// Reads every key of a token; a corrupt key file is reported in the second
    /// list without hiding the others.
    ///
    /// # Errors
    /// I/O errors on the keys directory.
    pub fn read_keys(&self, label: &str) -> Result<(Vec<KeyRecord>, Vec<StoreError>)> {
        check_name("token label", label)?;
        read_all(&self.token_dir(label).join("keys"), |r: &KeyRecord| {
            r.version
        })
    }

    /// Writes a key atomically.
    ///
    /// # Errors
    /// Bad names, I/O errors.
    pub fn write_key(&self, token: &str, k: &KeyRecord) -> Result<()> {
        check_name("token label", token)?;
        check_name("key id", &k.id)?;
        write_atomic(
            &self
                .token_dir(token)
                .join("keys")
                .join(format!("{}.json", k.id)),
            k,
        )
    }

    /// Reads every certificate and data object of a token (none when the token
    /// has no `objects` directory); a corrupt file is reported in the second list
    /// without hiding the others.
    ///
    /// # Errors
    /// I/O errors on the objects directory.
    pub fn read_objects(&self, label: &str) -> Result<(Vec<ObjectRecord>, Vec<StoreError>)> {
        check_name("token label", label)?;
        let dir = self.token_dir(label).join("objects");
        if !dir.exists() {
            return Ok((Vec::new(), Vec::new()));
        }
        let (all, mut bad) = read_all(&dir, |r: &ObjectRecord| r.version)?;
        let mut objects = Vec::new();
        for o in all {
            if check_name("object uid", &o.uid).is_ok()
                && dir.join(format!("{}.json", o.uid)).exists()
            {
                objects.push(o);
            } else {
                bad.push(StoreError::Corrupt {
                    path: dir.join(&o.uid),
                    reason: "uid does not match the file name".into(),
                });
            }
        }
        Ok((objects, bad))
    }

    /// Writes a certificate or data object atomically (creating the directory).
    ///
    /// # Errors
    /// Bad names, I/O errors.
    pub fn write_object(&self, token: &str, o: &ObjectRecord) -> Result<()> {
        check_name("token label", token)?;
        check_name("object uid", &o.uid)?;
        let dir = self.token_dir(token).join("objects");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io(&dir))?;
        write_atomic(&dir.join(format!("{}.json", o.uid)), o)
    }

    /// Removes a certificate or data object.
    ///
    /// # Errors
    /// I/O errors.
    pub fn remove_object(&self, token: &str, uid: &str) -> Result<()> {
        check_name("token label", token)?;
        check_name("object uid", uid)?;
        let dir = self.token_dir(token).join("objects");
        let p = dir.join(format!("{uid}.json"));
        fs::remove_file(&p).map_err(io(&p))?;
        sync_dir(&dir)
    }

    /// Removes a key.
    ///
    /// # Errors
    /// I/O errors.
    pub fn remove_key(&self, token: &str, id: &str) -> Result<()> {
        check_name("token label", token)?;
        check_name("key id", id)?;
        let dir = self.token_dir(token).join("keys");
        let p = dir.join(format!("{id}.json"));
        fs::remove_file(&p).map_err(io(&p))?;
        sync_dir(&dir)
    }
}

/// True when nothing at all is at `path` (not even a dangling link).
fn absent(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io(path)(e)),
    }
}

/// Every `*.json` record of a directory, in file-name order; a file that cannot be
/// read goes to the second list without hiding the others.
fn read_all<T: DeserializeOwned>(
    dir: &Path,
    version: impl Fn(&T) -> u32,
) -> Result<(Vec<T>, Vec<StoreError>)> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for p in paths {
        match read_versioned(&p, &version) {
            Ok(r) => good.push(r),
            Err(e) => bad.push(e),
        }
    }
    Ok((good, bad))
}

/// Reads a store file (a regular file of at most [`crate::files::MAX_FILE_SIZE`],
/// not a link) and checks its format version.
fn read_versioned<T: DeserializeOwned>(path: &Path, version: impl Fn(&T) -> u32) -> Result<T> {
    let text = read_file(path, Links::Refuse)?;
    // Look at the version first, so a newer format is named as such even when the
    // rest of it does not parse with this build's types.
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) {
        if let Some(found) = v.get("version").and_then(serde_json::Value::as_u64) {
            if found > u64::from(FORMAT_VERSION) {
                return Err(StoreError::TooNew {
                    path: path.to_path_buf(),
                    found: u32::try_from(found).unwrap_or(u32::MAX),
                });
            }
        }
    }
    let value: T = serde_json::from_slice(&text).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if version(&value) != FORMAT_VERSION {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("unknown format version {}", version(&value)),
        });
    }
    Ok(value)
}

/// A name part no other process or call of this one uses: pid and a counter.
fn unique_suffix() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Writes `value` as JSON to `path` atomically: a 0600 temp file in the same
/// directory, fsync, rename over `path`, fsync the directory.
fn write_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let dir = path.parent().ok_or(StoreError::NoLocation)?;
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    bytes.push(b'\n');
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("x");
    let tmp = dir.join(format!(".{name}.tmp-{}", unique_suffix()));
    let written = (|| {
        let mut f = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_CLOEXEC | nix::libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(&bytes)?;
        f.sync_all()
    })();
    if let Err(source) = written {
        // A full disk (ENOSPC) or a quota: leave nothing behind.
        let _ = fs::remove_file(&tmp);
        return Err(StoreError::Io {
            path: path.to_path_buf(),
            source,
        });
    }
    if let Err(source) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(StoreError::Io {
            path: path.to_path_buf(),
            source,
        });
    }
    sync_dir(dir)
}

/// Lower-case hex.
pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parses hex from a store file.
///
/// # Errors
/// [`StoreError::Corrupt`] naming `path` for anything that is not even-length hex.
pub fn from_hex(s: &str, path: &Path) -> Result<Vec<u8>> {
    let bad = || StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: "bad hex".into(),
    };
    if s.len() % 2 != 0 {
        return Err(bad());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}
