//! The module's state behind the C ABI, in safe Rust: slots (one per token in the
//! store), sessions, login state, objects, and the one TPM connection.
//!
//! - Nothing here touches the TPM until an operation needs it (login, sign, key
//!   generation, PIN changes, random bytes): initialization and every listing call
//!   read the store only.
//! - The connection, the pinned SRK, the salted session and loaded keys are made
//!   once and kept until [`Module`] is dropped (C_Finalize), which flushes them; on
//!   a TPM without a resource manager the TPM itself is let go after every call
//!   ([`Module::release`]) and come back to at the next operation.
//! - PKCS#11 semantics (PKCS#11 2.40 Base §5.6 sessions, §5.7 objects, §5.11
//!   signing) are enforced here; the FFI layer only converts pointers.
//!
//! This file holds the state and the slot, token and session functions; the
//! children add the rest: `conn` the TPM connection, `login` C_Login and
//! C_Logout, `objects` the object table and C_FindObjects*, `sign` signing,
//! `keygen` key generation, PINs and random bytes, `verify`, `encrypt`,
//! `decrypt`, `derive` and `digest` those operations, `checks` the argument
//! checks of the functions the module does not offer, `stored` the certificates
//! and data objects of the store, `create` C_CreateObject, C_CopyObject,
//! C_SetAttributeValue and C_GetObjectSize.

mod checks;
mod conn;
mod create;
mod decrypt;
mod derive;
mod digest;
mod encrypt;
mod keygen;
mod login;
mod objects;
mod sign;
mod stored;
mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::certificate::CertObject;
use super::data::DataObject;
use super::mechanisms::{Input, SignPlan};
use super::objects::{AttrValue, Class, KeyView};
use super::secret::SecretKey;
use crate::app::{App, Connected};
use crate::error::Error;
use crate::keys::ops::WrappedKey;
use crate::keys::templates::{KeyAlgorithm, KeyUsage};
use crate::store::{to_hex, KeyRecord, Store, TokenRecord};
use crate::tcti::Tcti;

/// A PKCS#11 return value.
pub type Rv = CK_RV;

/// Who is logged in to a token.
enum Login {
    /// The user; the token secret once unsealed (None until needed for a no-PIN
    /// token's older keys).
    User(Option<Zeroizing<Vec<u8>>>),
    /// The security officer, with the token secret the SO PIN unsealed.
    So(Zeroizing<Vec<u8>>),
}

/// One slot: a token of the store.
struct Slot {
    label: String,
    token: TokenRecord,
    present: bool,
    login: Option<Login>,
}

/// One object of a token (PKCS#11 2.40 Base §4.4).
struct Object {
    /// The slot of its token.
    slot: usize,
    /// The session that made it, for a session object (CKA_TOKEN false: gone at
    /// C_CloseSession, never in the store); None for a token object.
    session: Option<CK_SESSION_HANDLE>,
    /// What it is.
    kind: Kind,
}

/// The kinds of object the module holds.
enum Kind {
    /// One half of a key pair held by the TPM.
    Key(KeyHalf),
    /// A secret key derived in a session (C_DeriveKey).
    Secret(Box<SecretKey>),
    /// An X.509 certificate.
    Certificate(Box<CertObject>),
    /// A data object.
    Data(Box<DataObject>),
}

/// A key's private or public half: what it shows and the TPM blob behind it.
struct KeyHalf {
    class: Class,
    view: Arc<KeyView>,
    record: Arc<KeyRecord>,
    wrapped: Arc<WrappedKey>,
    /// A session key's authValue: random, in memory only (token keys derive
    /// theirs from the token secret).
    auth: Option<Arc<Zeroizing<Vec<u8>>>>,
}

impl Object {
    /// The key half, when the object is one.
    fn key(&self) -> Option<&KeyHalf> {
        match &self.kind {
            Kind::Key(k) => Some(k),
            _ => None,
        }
    }

    /// The key half of a token key object of `slot` (not a session object).
    fn token_key(&self, slot: usize) -> Option<&KeyHalf> {
        match &self.kind {
            Kind::Key(k) if self.slot == slot && self.session.is_none() => Some(k),
            _ => None,
        }
    }

    /// CKA_PRIVATE: hidden until the user logs in.
    fn is_private(&self) -> bool {
        match &self.kind {
            Kind::Key(k) => k.class == Class::Private && k.view.private_needs_login,
            Kind::Secret(k) => k.spec.private,
            Kind::Certificate(c) => c.storage.private,
            Kind::Data(d) => d.storage.private,
        }
    }

    /// One attribute (C_GetAttributeValue, §5.7).
    fn attribute(&self, t: CK_ATTRIBUTE_TYPE) -> AttrValue {
        let v = match &self.kind {
            Kind::Key(k) => k.view.attribute(k.class, t),
            Kind::Secret(k) => k.attribute(t),
            Kind::Certificate(c) => c.attribute(t),
            Kind::Data(d) => d.attribute(t),
        };
        match (t, v) {
            (CKA_TOKEN, _) => AttrValue::Value(vec![u8::from(self.session.is_none())]),
            (_, v) => v,
        }
    }

    /// True when every attribute of `template` has exactly the given value
    /// (C_FindObjectsInit matching, §5.7).
    fn matches(&self, template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> bool {
        template
            .iter()
            .all(|(t, want)| matches!(self.attribute(*t), AttrValue::Value(v) if &v == want))
    }
}

/// A signing operation in progress.
struct SignOp {
    key: CK_OBJECT_HANDLE,
    plan: SignPlan,
    input: Input,
}

/// One PKCS#11 session.
struct Session {
    slot: usize,
    rw: bool,
    find: Option<Vec<CK_OBJECT_HANDLE>>,
    sign: Option<SignOp>,
    ops: Ops,
}

/// A session's other operations (PKCS#11 2.40 Base §5.8-5.13), one of each kind
/// at a time.
#[derive(Default)]
struct Ops {
    digest: Option<digest::DigestOp>,
    verify: Option<verify::VerifyOp>,
    encrypt: Option<encrypt::EncryptOp>,
    decrypt: Option<decrypt::DecryptOp>,
}

/// What C_Sign gives back.
pub enum SignOutput {
    /// The caller asked for the length only (or its buffer was too small).
    Length(usize),
    /// The signature; the operation is over.
    Signature(Vec<u8>),
}

/// What C_Digest, C_Encrypt, C_Decrypt and their Final calls give back.
pub enum OpOutput {
    /// The caller asked for the length only, or its buffer was too small: the
    /// operation goes on.
    Length(usize),
    /// The result; the operation is over.
    Bytes(Zeroizing<Vec<u8>>),
}

/// Facts for C_GetTokenInfo, all from the store.
pub struct TokenFacts {
    /// The token label.
    pub label: String,
    /// The TPM's manufacturer.
    pub manufacturer: String,
    /// The TPM's vendor string.
    pub model: String,
    /// 16 hex digits from the SRK Name and the label.
    pub serial: String,
    /// CKF_* flags.
    pub flags: CK_FLAGS,
    /// Open sessions, and read/write ones.
    pub sessions: (usize, usize),
    /// TPM firmware version.
    pub firmware: (u8, u8),
}

/// What C_GetSessionInfo reports.
pub struct SessionFacts {
    /// The slot.
    pub slot: CK_SLOT_ID,
    /// CKS_*.
    pub state: CK_STATE,
    /// CKF_SERIAL_SESSION, CKF_RW_SESSION.
    pub flags: CK_FLAGS,
}

/// A key pair request from C_GenerateKeyPair's templates.
pub struct KeyPairRequest {
    /// The algorithm.
    pub alg: KeyAlgorithm,
    /// CKA_LABEL.
    pub label: Option<String>,
    /// CKA_ID.
    pub id: Option<Vec<u8>>,
    /// CKA_SIGN/CKA_VERIFY, CKA_DECRYPT/CKA_ENCRYPT, CKA_DERIVE: what the TPM
    /// object may do.
    pub usage: KeyUsage,
    /// CKA_TOKEN: a token object (in the store) rather than a session object.
    pub token: bool,
    /// The private key's CKA_PRIVATE.
    pub private: bool,
}

/// Prints a one-line diagnostic on stderr (the host application's users need to
/// know why a TPM operation failed; PKCS#11 return codes cannot say).
/// `TPMKEY_PKCS11_QUIET=1` silences it. Never given secrets.
fn diagnose(e: &Error) {
    say(&e.to_string());
}

/// One line on stderr, unless `TPMKEY_PKCS11_QUIET=1`.
fn say(msg: &str) {
    if std::env::var_os("TPMKEY_PKCS11_QUIET").is_some_and(|v| v == "1") {
        return;
    }
    eprintln!("libtpmkey: {msg}");
}

/// Maps a library error to a return value (after saying what went wrong when the
/// code alone would not tell a user).
fn rv_of(e: &Error) -> Rv {
    use tpm_commands::rc::ResponseCode as Rc;
    match e {
        Error::Tpm { rc, .. } if matches!(rc.base(), Rc::AUTH_FAIL | Rc::BAD_AUTH) => {
            CKR_PIN_INCORRECT
        }
        Error::Tpm { rc, .. } if rc.base() == Rc::LOCKOUT => {
            diagnose(e);
            CKR_PIN_LOCKED
        }
        Error::Lockout { .. } => {
            diagnose(e);
            CKR_PIN_LOCKED
        }
        Error::Transport(_) => {
            diagnose(e);
            CKR_DEVICE_ERROR
        }
        Error::Tpm { rc, .. } if matches!(rc.base(), Rc::OBJECT_MEMORY | Rc::SESSION_MEMORY) => {
            diagnose(e);
            CKR_DEVICE_MEMORY
        }
        _ => {
            diagnose(e);
            CKR_FUNCTION_FAILED
        }
    }
}

/// The module's state between C_Initialize and C_Finalize.
pub struct Module {
    app: Option<App>,
    tcti_error: Option<String>,
    pid: u32,
    slots: Vec<Slot>,
    sessions: BTreeMap<CK_SESSION_HANDLE, Session>,
    next_session: CK_SESSION_HANDLE,
    /// Object handle h is objects[h - 1].
    objects: Vec<Option<Object>>,
    /// The TPM connection: opened at the first operation that needs it.
    conn: Option<Connected>,
    /// Store problems already reported on stderr (each is said once, not at
    /// every listing call).
    reported: BTreeSet<String>,
}

impl Module {
    /// C_Initialize: reads where the store and TPM are from the environment
    /// (`TPMKEY_STORE`, `TPMKEY_TCTI`, …) and lists the tokens. No TPM, network or
    /// D-Bus access; a missing store means no slots.
    pub fn new() -> Module {
        let (tcti, tcti_error) = match Tcti::from_env() {
            Ok(t) => (t, None),
            Err(e) => (
                Tcti::Device {
                    path: "/dev/tpmrm0".into(),
                },
                Some(e.to_string()),
            ),
        };
        // No store yet (nothing made with `tpmkey init`) means no slots, quietly; a
        // store that cannot be read is said on stderr, not shown as no tokens.
        let exists = |p: &std::path::Path| std::fs::symlink_metadata(p).is_ok();
        let (app, store_error) = match Store::default_path() {
            Err(e) => (None, Some(format!("no tokens are shown: {e}"))),
            Ok(p) if !exists(&p.join("store.json")) && !exists(&p.join("tokens")) => (None, None),
            Ok(p) => match Store::open(p) {
                Ok(store) => (Some(App { store, tcti }), None),
                Err(e) => (
                    None,
                    Some(format!(
                        "cannot read the key store, so no tokens are shown: {e}"
                    )),
                ),
            },
        };
        let mut m = Module {
            app,
            tcti_error,
            pid: std::process::id(),
            slots: Vec::new(),
            sessions: BTreeMap::new(),
            next_session: 1,
            objects: Vec::new(),
            conn: None,
            reported: BTreeSet::new(),
        };
        if let Some(e) = store_error {
            m.report(e);
        }
        m.refresh_slots();
        m
    }

    /// The process that initialized the module (a forked child must initialize
    /// again, PKCS#11 Base §5.4).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Forgets the TPM connection without flushing: in a forked child the handles
    /// belong to the parent.
    pub fn abandon(mut self) {
        if let Some(c) = self.conn.take() {
            std::mem::forget(c);
        }
    }

    /// Says a store problem on stderr, once per module lifetime.
    fn report(&mut self, msg: String) {
        if !self.reported.contains(&msg) {
            say(&msg);
            self.reported.insert(msg);
        }
    }

    /// Re-reads the token list; slot ids stay stable for the module's lifetime. A
    /// token whose record cannot be read is left out, and said on stderr.
    fn refresh_slots(&mut self) {
        let Some(app) = &self.app else { return };
        let mut problems = Vec::new();
        let labels = app.store.token_labels().unwrap_or_else(|e| {
            problems.push(format!("no tokens are shown: {e}"));
            Vec::new()
        });
        let mut tokens = Vec::new();
        for l in labels {
            match app.store.read_token(&l) {
                Ok(t) => tokens.push((l, t)),
                Err(e) => problems.push(format!("token {l:?} is not shown: {e}")),
            }
        }
        for p in problems {
            self.report(p);
        }
        for s in &mut self.slots {
            s.present = tokens.iter().any(|(l, _)| *l == s.label);
        }
        for (l, token) in tokens {
            match self.slots.iter_mut().find(|s| s.label == l) {
                Some(s) => s.token = token,
                None => self.slots.push(Slot {
                    label: l,
                    token,
                    present: true,
                    login: None,
                }),
            }
        }
    }

    fn slot_index(&self, id: CK_SLOT_ID) -> Result<usize, Rv> {
        let i = usize::try_from(id).map_err(|_| CKR_SLOT_ID_INVALID)?;
        match self.slots.get(i) {
            Some(s) if s.present => Ok(i),
            Some(_) => Err(CKR_TOKEN_NOT_PRESENT),
            None => Err(CKR_SLOT_ID_INVALID),
        }
    }

    /// C_GetSlotList: slot ids (only those with a token when `present_only`; every
    /// slot has one unless its token was removed meanwhile).
    pub fn slot_list(&mut self, present_only: bool) -> Vec<CK_SLOT_ID> {
        self.refresh_slots();
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.present || !present_only)
            .map(|(i, _)| i as CK_SLOT_ID)
            .collect()
    }

    /// C_GetSlotInfo: (label, token present).
    ///
    /// # Errors
    /// CKR_SLOT_ID_INVALID.
    pub fn slot_info(&self, id: CK_SLOT_ID) -> Result<(String, bool), Rv> {
        let i = usize::try_from(id).map_err(|_| CKR_SLOT_ID_INVALID)?;
        let s = self.slots.get(i).ok_or(CKR_SLOT_ID_INVALID)?;
        Ok((s.label.clone(), s.present))
    }

    /// C_GetTokenInfo.
    ///
    /// # Errors
    /// CKR_SLOT_ID_INVALID, CKR_TOKEN_NOT_PRESENT.
    pub fn token_info(&mut self, id: CK_SLOT_ID) -> Result<TokenFacts, Rv> {
        self.refresh_slots();
        let i = self.slot_index(id)?;
        let s = &self.slots[i];
        let rec = self.app.as_ref().and_then(|a| a.store.read_record().ok());
        let (manufacturer, model, firmware) = match rec.as_ref().and_then(|r| r.tpm.clone()) {
            Some(t) => (
                t.manufacturer,
                t.vendor,
                (
                    u8::try_from(t.firmware.0 >> 16).unwrap_or(u8::MAX),
                    u8::try_from(t.firmware.0 & 0xffff).unwrap_or(u8::MAX),
                ),
            ),
            None => ("TPM".into(), "TPM 2.0".into(), (0, 0)),
        };
        let srk_name = rec
            .as_ref()
            .and_then(|r| r.srk.as_ref())
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let serial = crate::crypto::hash::HashAlg::Sha256.hash(&[
            srk_name.as_bytes(),
            b"\0",
            s.label.as_bytes(),
        ]);
        let mut flags = CKF_RNG | CKF_TOKEN_INITIALIZED;
        if !s.token.no_pin {
            flags |= CKF_LOGIN_REQUIRED;
            if s.token.user_seal.is_some() {
                flags |= CKF_USER_PIN_INITIALIZED;
            }
            flags |= login::pin_flags(&s.token, rec.as_ref().and_then(|r| r.lockout.as_ref()));
        }
        let open = self.sessions.values().filter(|x| x.slot == i);
        let rw = open.clone().filter(|x| x.rw).count();
        Ok(TokenFacts {
            label: s.label.clone(),
            manufacturer,
            model,
            serial: to_hex(&serial[..8]),
            flags,
            sessions: (open.count(), rw),
            firmware,
        })
    }

    /// C_GetMechanismInfo: key sizes from the key algorithms this TPM makes, as
    /// recorded in the store (no TPM command).
    ///
    /// # Errors
    /// CKR_MECHANISM_INVALID.
    pub fn mechanism_info(
        &self,
        mech: CK_MECHANISM_TYPE,
    ) -> Result<(CK_ULONG, CK_ULONG, CK_FLAGS), Rv> {
        let algs = self.app.as_ref().and_then(|a| a.known_algorithms());
        super::mechanisms::info_for(mech, algs.as_deref()).ok_or(CKR_MECHANISM_INVALID)
    }

    /// C_OpenSession.
    ///
    /// # Errors
    /// CKR_SESSION_PARALLEL_NOT_SUPPORTED, CKR_SESSION_READ_WRITE_SO_EXISTS, slot
    /// errors.
    pub fn open_session(
        &mut self,
        slot: CK_SLOT_ID,
        flags: CK_FLAGS,
    ) -> Result<CK_SESSION_HANDLE, Rv> {
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(CKR_SESSION_PARALLEL_NOT_SUPPORTED);
        }
        let i = self.slot_index(slot)?;
        let rw = flags & CKF_RW_SESSION != 0;
        if !rw && matches!(self.slots[i].login, Some(Login::So(_))) {
            return Err(CKR_SESSION_READ_WRITE_SO_EXISTS);
        }
        let h = self.next_session;
        self.next_session += 1;
        self.sessions.insert(
            h,
            Session {
                slot: i,
                rw,
                find: None,
                sign: None,
                ops: Ops::default(),
            },
        );
        Ok(h)
    }

    /// C_CloseSession: its session objects go with it; the last session of a
    /// token logs it out (§5.6).
    ///
    /// # Errors
    /// CKR_SESSION_HANDLE_INVALID.
    pub fn close_session(&mut self, h: CK_SESSION_HANDLE) -> Result<(), Rv> {
        let s = self.sessions.remove(&h).ok_or(CKR_SESSION_HANDLE_INVALID)?;
        self.drop_session_objects(|owner| owner == h);
        if !self.sessions.values().any(|x| x.slot == s.slot) {
            self.logout_slot(s.slot);
        }
        Ok(())
    }

    /// C_CloseAllSessions.
    ///
    /// # Errors
    /// Slot errors.
    pub fn close_all_sessions(&mut self, slot: CK_SLOT_ID) -> Result<(), Rv> {
        let i = usize::try_from(slot).map_err(|_| CKR_SLOT_ID_INVALID)?;
        if i >= self.slots.len() {
            return Err(CKR_SLOT_ID_INVALID);
        }
        let closed: Vec<CK_SESSION_HANDLE> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.slot == i)
            .map(|(h, _)| *h)
            .collect();
        self.sessions.retain(|_, s| s.slot != i);
        self.drop_session_objects(|owner| closed.contains(&owner));
        self.logout_slot(i);
        Ok(())
    }

    fn session(&mut self, h: CK_SESSION_HANDLE) -> Result<&mut Session, Rv> {
        self.sessions.get_mut(&h).ok_or(CKR_SESSION_HANDLE_INVALID)
    }

    /// C_GetSessionInfo.
    ///
    /// # Errors
    /// CKR_SESSION_HANDLE_INVALID.
    pub fn session_info(&mut self, h: CK_SESSION_HANDLE) -> Result<SessionFacts, Rv> {
        let s = self.sessions.get(&h).ok_or(CKR_SESSION_HANDLE_INVALID)?;
        let slot = &self.slots[s.slot];
        let user = match &slot.login {
            Some(Login::User(_)) => true,
            None => slot.token.no_pin,
            _ => false,
        };
        let state = match (&slot.login, s.rw) {
            (Some(Login::So(_)), _) => CKS_RW_SO_FUNCTIONS,
            _ if user && s.rw => CKS_RW_USER_FUNCTIONS,
            _ if user => CKS_RO_USER_FUNCTIONS,
            (_, true) => CKS_RW_PUBLIC_SESSION,
            (_, false) => CKS_RO_PUBLIC_SESSION,
        };
        let mut flags = CKF_SERIAL_SESSION;
        if s.rw {
            flags |= CKF_RW_SESSION;
        }
        Ok(SessionFacts {
            slot: s.slot as CK_SLOT_ID,
            state,
            flags,
        })
    }

    fn logout_slot(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.login = None;
        }
        self.forget_private_stored(slot);
    }

    /// Forgets the session objects of the sessions `closed` picks (§5.6: a
    /// session object lives as long as its session), unloading any TPM key.
    fn drop_session_objects(&mut self, closed: impl Fn(CK_SESSION_HANDLE) -> bool) {
        let gone: Vec<CK_OBJECT_HANDLE> = self
            .objects
            .iter()
            .enumerate()
            .filter(|(_, o)| o.as_ref().and_then(|o| o.session).is_some_and(&closed))
            .map(|(i, _)| (i + 1) as CK_OBJECT_HANDLE)
            .collect();
        for oh in gone {
            self.unload(oh);
            self.objects[(oh - 1) as usize] = None;
        }
    }
}

/// C_Finalize (or the process's exit): what the module loaded is flushed when the
/// Tpm closes. `TPMKEY_PKCS11_STATS=1` then prints how many TPM commands the module
/// sent in all, on stderr.
impl Drop for Module {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let sent = conn.close();
        if std::env::var_os("TPMKEY_PKCS11_STATS").is_some_and(|v| v == "1") {
            eprintln!("libtpmkey: {sent} TPM commands sent");
        }
    }
}

impl Default for Module {
    fn default() -> Self {
        Module::new()
    }
}
