//! The module's state behind the C ABI, in safe Rust: slots (one per token in the
//! store), sessions, login state, objects, and the one TPM connection.
//!
//! - Nothing here touches the TPM until an operation needs it (login, sign, key
//!   generation, PIN changes, random bytes): initialization and every listing call
//!   read the store only.
//! - The connection, the pinned SRK, the salted session and loaded keys are made
//!   once and kept until [`Module`] is dropped (C_Finalize), which flushes them.
//! - PKCS#11 semantics (PKCS#11 2.40 Base §5.6 sessions, §5.7 objects, §5.11
//!   signing) are enforced here; the FFI layer only converts pointers.

use std::collections::BTreeMap;
use std::sync::Arc;

use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::mechanisms::{self, Input, MechError, PssParams, SignPlan};
use super::objects::{AttrValue, Class, KeyView, P256_PARAMS, P384_PARAMS};
use crate::app::{parse_algorithm, unwrap_record, App, Connected, Unlock};
use crate::error::Error;
use crate::keys::ops::{self, LoadedKey, WrappedKey};
use crate::keys::srk::Srk;
use crate::keys::templates::KeyAlgorithm;
use crate::session::start::{start_session, SessionParams};
use crate::session::AuthSession;
use crate::store::{from_hex, to_hex, KeyRecord, Store, TokenRecord};
use crate::tcti::Tcti;
use crate::tpm::{Auth, Tpm};

/// A PKCS#11 return value.
pub type Rv = CK_RV;

/// How many signing keys stay loaded at once. A TPM without a resource manager
/// holds three transient objects (libtpms); one slot is left for the token seal.
const MAX_LOADED: usize = 2;

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

/// One object: a key's private or public half.
struct Object {
    slot: usize,
    class: Class,
    view: Arc<KeyView>,
    record: Arc<KeyRecord>,
    wrapped: Arc<WrappedKey>,
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
}

/// The TPM connection: opened at the first operation that needs it.
struct Conn {
    tpm: Tpm,
    srk: Srk,
    /// The salted HMAC session, started when something secret is first sent.
    session: Option<AuthSession>,
    /// Loaded signing keys by private-object handle, oldest first.
    loaded: Vec<(CK_OBJECT_HANDLE, LoadedKey)>,
}

/// What C_Sign gives back.
pub enum SignOutput {
    /// The caller asked for the length only (or its buffer was too small).
    Length(usize),
    /// The signature; the operation is over.
    Signature(Vec<u8>),
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
}

/// Prints a one-line diagnostic on stderr (the host application's users need to
/// know why a TPM operation failed; PKCS#11 return codes cannot say).
/// `TPMKEY_PKCS11_QUIET=1` silences it. Never given secrets.
fn diagnose(e: &Error) {
    if std::env::var_os("TPMKEY_PKCS11_QUIET").is_some_and(|v| v == "1") {
        return;
    }
    eprintln!("libtpmkey: {e}");
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

fn mech_rv(e: MechError) -> Rv {
    match e {
        MechError::Invalid => CKR_MECHANISM_INVALID,
        MechError::ParamInvalid => CKR_MECHANISM_PARAM_INVALID,
        MechError::DataLen => CKR_DATA_LEN_RANGE,
        MechError::DataInvalid => CKR_DATA_INVALID,
        MechError::KeyType => CKR_KEY_TYPE_INCONSISTENT,
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
    conn: Option<Conn>,
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
        let app = Store::default_path()
            .ok()
            .filter(|p| p.join("store.json").exists() || p.join("tokens").exists())
            .and_then(|p| Store::open(p).ok())
            .map(|store| App { store, tcti });
        let mut m = Module {
            app,
            tcti_error,
            pid: std::process::id(),
            slots: Vec::new(),
            sessions: BTreeMap::new(),
            next_session: 1,
            objects: Vec::new(),
            conn: None,
        };
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

    /// Re-reads the token list; slot ids stay stable for the module's lifetime.
    fn refresh_slots(&mut self) {
        let Some(app) = &self.app else { return };
        let labels = app.store.token_labels().unwrap_or_default();
        for s in &mut self.slots {
            s.present = labels.contains(&s.label);
        }
        for l in labels {
            let token = match app.store.read_token(&l) {
                Ok(t) => t,
                Err(_) => continue,
            };
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
        let srk_name = rec.and_then(|r| r.srk).map(|s| s.name).unwrap_or_default();
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
            },
        );
        Ok(h)
    }

    /// C_CloseSession; the last session of a token logs it out (§5.6).
    ///
    /// # Errors
    /// CKR_SESSION_HANDLE_INVALID.
    pub fn close_session(&mut self, h: CK_SESSION_HANDLE) -> Result<(), Rv> {
        let s = self.sessions.remove(&h).ok_or(CKR_SESSION_HANDLE_INVALID)?;
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
        self.sessions.retain(|_, s| s.slot != i);
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
    }

    // ---- the TPM connection ----

    fn app(&self) -> Result<&App, Rv> {
        self.app.as_ref().ok_or_else(|| {
            diagnose(&Error::Usage(
                "no tpmkey store here: run `tpmkey init` and `tpmkey token add` first".into(),
            ));
            CKR_TOKEN_NOT_PRESENT
        })
    }

    /// The connection, opened (TPM, pinned SRK) on first use.
    fn conn(&mut self) -> Result<&mut Conn, Rv> {
        if self.conn.is_none() {
            if let Some(e) = &self.tcti_error {
                diagnose(&Error::Usage(e.clone()));
                return Err(CKR_DEVICE_ERROR);
            }
            let (tpm, srk) = self.app()?.connect_srk_pinned().map_err(|e| rv_of(&e))?;
            self.conn = Some(Conn {
                tpm,
                srk,
                session: None,
                loaded: Vec::new(),
            });
        }
        self.conn.as_mut().ok_or(CKR_GENERAL_ERROR)
    }

    /// Flushes the salted session, if one is open (the next operation that needs one
    /// starts another).
    fn flush_session(&mut self) {
        if let Some(c) = self.conn.as_mut() {
            if let Some(mut s) = c.session.take() {
                let _ = c.tpm.flush_session(&mut s);
            }
        }
    }

    /// The return value for a failed TPM operation. An integrity or handle error may
    /// mean the TPM is not the one the store was made on (the pinned SRK is used
    /// without asking the TPM first): then say so, which the raw error would not.
    fn fail(&mut self, e: &Error) -> Rv {
        use tpm_commands::constants::TpmCc;
        use tpm_commands::rc::ResponseCode as Rc;
        // A salt to another key, or a blob of another parent, fails in
        // StartAuthSession or Load (a session the TPM cannot key fails its HMAC:
        // TPM_RC_AUTH_FAIL on Load, which is no PIN error).
        let suspicious = match e {
            Error::Integrity { .. } => true,
            Error::Tpm { cc, rc } => {
                *cc == TpmCc::LOAD
                    || *cc == TpmCc::START_AUTH_SESSION
                    || matches!(rc.base(), Rc::INTEGRITY | Rc::HANDLE)
            }
            _ => false,
        };
        if suspicious {
            if let Some(wrong) = self.srk_mismatch() {
                diagnose(&wrong);
                return CKR_DEVICE_ERROR;
            }
        }
        let rv = rv_of(e);
        self.check_conn(e);
        rv
    }

    /// Asks the TPM for its SRK and compares it with the pinned one: the error to
    /// report when they differ (or the SRK is gone).
    fn srk_mismatch(&mut self) -> Option<Error> {
        let pinned = self.app.as_ref()?.store.read_record().ok()?.srk?;
        let want = from_hex(&pinned.name, std::path::Path::new("store.json")).ok()?;
        let conn = self.conn.as_mut()?;
        let found = Srk::load(&mut conn.tpm, App::srk_kind(&pinned));
        match found {
            Ok(srk) => {
                if !srk.persistent {
                    let _ = conn.tpm.flush(srk.handle);
                }
                srk.check_pinned(&want).err()
            }
            Err(e) => Some(e),
        }
    }

    /// Drops the connection after a transport failure, so the next call reconnects.
    fn check_conn(&mut self, e: &Error) {
        if matches!(e, Error::Transport(_)) {
            if let Some(c) = self.conn.take() {
                std::mem::forget(c.tpm);
            }
        }
    }

    /// Runs `f` on a [`Connected`] (TPM, SRK and salted session), starting the
    /// session if needed, and puts the connection back afterwards.
    fn with_connected<T>(
        &mut self,
        f: impl FnOnce(&App, &mut Connected) -> crate::Result<T>,
    ) -> Result<T, Rv> {
        self.conn()?;
        let Some(mut conn) = self.conn.take() else {
            return Err(CKR_GENERAL_ERROR);
        };
        let session = match conn.session.take() {
            Some(s) if s.is_open() => s,
            _ => match start_session(
                &mut conn.tpm,
                &SessionParams::salted_hmac(&match conn.srk.salt_key() {
                    Ok(k) => k,
                    Err(e) => {
                        self.conn = Some(conn);
                        return Err(rv_of(&e));
                    }
                }),
            ) {
                Ok(s) => s,
                Err(e) => {
                    self.conn = Some(conn);
                    return Err(self.fail(&e));
                }
            },
        };
        let loaded = std::mem::take(&mut conn.loaded);
        let mut c = Connected {
            tpm: conn.tpm,
            srk: conn.srk,
            session,
        };
        let r = match &self.app {
            Some(app) => f(app, &mut c),
            None => Err(Error::Usage("no store".into())),
        };
        self.conn = Some(Conn {
            tpm: c.tpm,
            srk: c.srk,
            session: Some(c.session),
            loaded,
        });
        r.map_err(|e| self.fail(&e))
    }

    // ---- login ----

    /// C_Login: the TPM checks the PIN by unsealing the token secret (wrong PINs
    /// count against its dictionary-attack lockout).
    ///
    /// # Errors
    /// CKR_PIN_INCORRECT, CKR_PIN_LOCKED, CKR_USER_ALREADY_LOGGED_IN,
    /// CKR_USER_ANOTHER_ALREADY_LOGGED_IN, CKR_SESSION_READ_ONLY_EXISTS, …
    pub fn login(
        &mut self,
        h: CK_SESSION_HANDLE,
        user: CK_USER_TYPE,
        pin: &[u8],
    ) -> Result<(), Rv> {
        let slot = self.session(h)?.slot;
        let so = match user {
            CKU_USER => false,
            CKU_SO => true,
            CKU_CONTEXT_SPECIFIC => return Err(CKR_OPERATION_NOT_INITIALIZED),
            _ => return Err(CKR_USER_TYPE_INVALID),
        };
        match (&self.slots[slot].login, so) {
            (Some(Login::User(_)), false) | (Some(Login::So(_)), true) => {
                return Err(CKR_USER_ALREADY_LOGGED_IN)
            }
            (Some(_), _) => return Err(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
            (None, _) => {}
        }
        if so {
            if self.sessions.values().any(|s| s.slot == slot && !s.rw) {
                return Err(CKR_SESSION_READ_ONLY_EXISTS);
            }
            if self.slots[slot].token.so_seal.is_none() {
                return Err(CKR_USER_TYPE_INVALID);
            }
        }
        if self.slots[slot].token.no_pin && !so {
            self.slots[slot].login = Some(Login::User(None));
            return Ok(());
        }
        if !so && self.slots[slot].token.user_seal.is_none() {
            return Err(CKR_USER_PIN_NOT_INITIALIZED);
        }
        if pin.is_empty() {
            return Err(CKR_PIN_INCORRECT);
        }
        let label = self.slots[slot].label.clone();
        let secret = match self.with_connected(|app, c| app.unseal_token(c, &label, pin, so)) {
            Ok(s) => s,
            Err(rv) => {
                // A failed login is often followed by an exit that runs no
                // destructors (ssh's fatal() ends in _exit): leave nothing loaded
                // on a TPM without a resource manager. A retry starts a new session.
                self.flush_session();
                return Err(rv);
            }
        };
        self.slots[slot].login = Some(if so {
            Login::So(secret)
        } else {
            Login::User(Some(secret))
        });
        Ok(())
    }

    /// C_Logout.
    ///
    /// # Errors
    /// CKR_USER_NOT_LOGGED_IN.
    pub fn logout(&mut self, h: CK_SESSION_HANDLE) -> Result<(), Rv> {
        let slot = self.session(h)?.slot;
        if self.slots[slot].login.is_none() {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        self.logout_slot(slot);
        for s in self.sessions.values_mut().filter(|s| s.slot == slot) {
            s.find = None;
            s.sign = None;
        }
        Ok(())
    }

    fn user_logged_in(&self, slot: usize) -> bool {
        let s = &self.slots[slot];
        s.token.no_pin || matches!(s.login, Some(Login::User(_)))
    }

    // ---- objects ----

    /// Re-reads a token's keys: new keys get new handles, removed keys lose
    /// theirs, the others keep them.
    fn refresh_objects(&mut self, slot: usize) {
        let Some(app) = &self.app else { return };
        let label = self.slots[slot].label.clone();
        let needs_login = !self.slots[slot].token.no_pin;
        let mut keys = app
            .store
            .read_keys(&label)
            .map(|(k, _)| k)
            .unwrap_or_default();
        // Oldest first, so that listings (ssh-keygen -D, pkcs11-tool -O) keep one order.
        keys.sort_by(|a, b| (a.created, &a.label).cmp(&(b.created, &b.label)));
        let path = app.store.root().join("tokens").join(&label);
        for o in self.objects.iter_mut() {
            if o.as_ref()
                .is_some_and(|o| o.slot == slot && !keys.iter().any(|k| k.id == o.record.id))
            {
                *o = None;
            }
        }
        for k in keys {
            let known = self
                .objects
                .iter()
                .flatten()
                .any(|o| o.slot == slot && o.record.id == k.id && o.record.blob == k.blob);
            if known {
                continue;
            }
            // A key file rewritten under the same id: drop the old objects.
            for o in self.objects.iter_mut() {
                if o.as_ref()
                    .is_some_and(|o| o.slot == slot && o.record.id == k.id)
                {
                    *o = None;
                }
            }
            let (Ok(alg), Ok(wrapped), Ok(id)) = (
                parse_algorithm(&k.algorithm),
                unwrap_record(&k.blob, &path),
                from_hex(&k.id, &path),
            ) else {
                continue;
            };
            let view = Arc::new(KeyView {
                label: k.label.clone(),
                id,
                alg,
                public: wrapped.public.clone(),
                imported: k.imported,
                private_needs_login: needs_login,
            });
            let record = Arc::new(k);
            let wrapped = Arc::new(wrapped);
            for class in [Class::Private, Class::Public] {
                self.objects.push(Some(Object {
                    slot,
                    class,
                    view: view.clone(),
                    record: record.clone(),
                    wrapped: wrapped.clone(),
                }));
            }
        }
    }

    /// The object `oh` as seen from session `h`: it must be on the session's
    /// token, and a private object needs the user logged in.
    fn object(&self, h: CK_SESSION_HANDLE, oh: CK_OBJECT_HANDLE) -> Result<&Object, Rv> {
        let s = self.sessions.get(&h).ok_or(CKR_SESSION_HANDLE_INVALID)?;
        let i = usize::try_from(oh)
            .ok()
            .and_then(|x| x.checked_sub(1))
            .ok_or(CKR_OBJECT_HANDLE_INVALID)?;
        let o = self
            .objects
            .get(i)
            .and_then(|o| o.as_ref())
            .ok_or(CKR_OBJECT_HANDLE_INVALID)?;
        if o.slot != s.slot || !self.visible(o) {
            return Err(CKR_OBJECT_HANDLE_INVALID);
        }
        Ok(o)
    }

    fn visible(&self, o: &Object) -> bool {
        o.class == Class::Public || !o.view.private_needs_login || self.user_logged_in(o.slot)
    }

    /// C_FindObjectsInit.
    ///
    /// # Errors
    /// CKR_OPERATION_ACTIVE, session errors.
    pub fn find_init(
        &mut self,
        h: CK_SESSION_HANDLE,
        template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<(), Rv> {
        let slot = {
            let s = self.session(h)?;
            if s.find.is_some() {
                return Err(CKR_OPERATION_ACTIVE);
            }
            s.slot
        };
        self.refresh_objects(slot);
        let found: Vec<CK_OBJECT_HANDLE> = self
            .objects
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.as_ref().map(|o| (i, o)))
            .filter(|(_, o)| o.slot == slot && self.visible(o) && o.view.matches(o.class, template))
            .map(|(i, _)| (i + 1) as CK_OBJECT_HANDLE)
            .rev()
            .collect();
        self.session(h)?.find = Some(found);
        Ok(())
    }

    /// C_FindObjects: up to `max` more handles.
    ///
    /// # Errors
    /// CKR_OPERATION_NOT_INITIALIZED, session errors.
    pub fn find_next(
        &mut self,
        h: CK_SESSION_HANDLE,
        max: usize,
    ) -> Result<Vec<CK_OBJECT_HANDLE>, Rv> {
        let f = self
            .session(h)?
            .find
            .as_mut()
            .ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let mut out = Vec::new();
        while out.len() < max {
            match f.pop() {
                Some(x) => out.push(x),
                None => break,
            }
        }
        Ok(out)
    }

    /// C_FindObjectsFinal.
    ///
    /// # Errors
    /// CKR_OPERATION_NOT_INITIALIZED, session errors.
    pub fn find_final(&mut self, h: CK_SESSION_HANDLE) -> Result<(), Rv> {
        self.session(h)?
            .find
            .take()
            .map(|_| ())
            .ok_or(CKR_OPERATION_NOT_INITIALIZED)
    }

    /// C_GetAttributeValue for one attribute.
    ///
    /// # Errors
    /// Session and object handle errors.
    pub fn attribute(
        &self,
        h: CK_SESSION_HANDLE,
        oh: CK_OBJECT_HANDLE,
        t: CK_ATTRIBUTE_TYPE,
    ) -> Result<AttrValue, Rv> {
        let o = self.object(h, oh)?;
        Ok(o.view.attribute(o.class, t))
    }

    /// C_DestroyObject: removes the key (both its objects) from the token.
    ///
    /// # Errors
    /// CKR_SESSION_READ_ONLY, CKR_USER_NOT_LOGGED_IN, handle errors.
    pub fn destroy(&mut self, h: CK_SESSION_HANDLE, oh: CK_OBJECT_HANDLE) -> Result<(), Rv> {
        let (slot, id) = {
            let o = self.object(h, oh)?;
            (o.slot, o.record.id.clone())
        };
        if !self.sessions.get(&h).is_some_and(|s| s.rw) {
            return Err(CKR_SESSION_READ_ONLY);
        }
        if !self.user_logged_in(slot) {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        let label = self.slots[slot].label.clone();
        let app = self.app()?;
        let r = app
            .store
            .lock()
            .and_then(|_l| app.store.remove_key(&label, &id));
        r.map_err(|e| rv_of(&Error::Store(e)))?;
        let handles: Vec<CK_OBJECT_HANDLE> = self
            .objects
            .iter()
            .enumerate()
            .filter(|(_, o)| {
                o.as_ref()
                    .is_some_and(|o| o.slot == slot && o.record.id == id)
            })
            .map(|(i, _)| (i + 1) as CK_OBJECT_HANDLE)
            .collect();
        for x in &handles {
            self.objects[(*x - 1) as usize] = None;
            self.unload(*x);
        }
        Ok(())
    }

    // ---- signing ----

    /// C_SignInit.
    ///
    /// # Errors
    /// CKR_OPERATION_ACTIVE, CKR_KEY_HANDLE_INVALID, CKR_KEY_FUNCTION_NOT_PERMITTED,
    /// CKR_USER_NOT_LOGGED_IN, mechanism errors.
    pub fn sign_init(
        &mut self,
        h: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        pss: Option<PssParams>,
        key: CK_OBJECT_HANDLE,
    ) -> Result<(), Rv> {
        if self.session(h)?.sign.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        let o = self.object(h, key).map_err(|rv| {
            if rv == CKR_OBJECT_HANDLE_INVALID {
                CKR_KEY_HANDLE_INVALID
            } else {
                rv
            }
        })?;
        if o.class != Class::Private {
            return Err(CKR_KEY_FUNCTION_NOT_PERMITTED);
        }
        if !self.user_logged_in(o.slot) {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        let plan =
            mechanisms::plan(mech, pss, o.view.alg, o.view.modulus_len()).map_err(mech_rv)?;
        let input = Input::new(&plan);
        self.session(h)?.sign = Some(SignOp { key, plan, input });
        Ok(())
    }

    fn end_sign<T>(&mut self, h: CK_SESSION_HANDLE, r: Result<T, Rv>) -> Result<T, Rv> {
        if r.is_err() {
            if let Ok(s) = self.session(h) {
                s.sign = None;
            }
        }
        r
    }

    /// C_SignUpdate.
    ///
    /// # Errors
    /// CKR_OPERATION_NOT_INITIALIZED, CKR_DATA_LEN_RANGE (ends the operation).
    pub fn sign_update(&mut self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<(), Rv> {
        let op = self
            .session(h)?
            .sign
            .as_mut()
            .ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let r = op.input.update(data).map_err(mech_rv);
        self.end_sign(h, r)
    }

    /// C_Sign (with `data`) or C_SignFinal (`data` None). `capacity` is the
    /// caller's buffer size, None for a length query; the operation stays active
    /// after a length query or a too-small buffer (§5.2).
    ///
    /// # Errors
    /// CKR_OPERATION_NOT_INITIALIZED, data, mechanism and TPM errors (which end
    /// the operation).
    pub fn sign(
        &mut self,
        h: CK_SESSION_HANDLE,
        data: Option<&[u8]>,
        capacity: Option<usize>,
    ) -> Result<SignOutput, Rv> {
        let sig_len = self
            .session(h)?
            .sign
            .as_ref()
            .ok_or(CKR_OPERATION_NOT_INITIALIZED)?
            .plan
            .sig_len;
        if capacity.is_none_or(|c| c < sig_len) {
            return Ok(SignOutput::Length(sig_len));
        }
        let Some(mut op) = self.session(h)?.sign.take() else {
            return Err(CKR_OPERATION_NOT_INITIALIZED);
        };
        if let Some(d) = data {
            op.input.update(d).map_err(mech_rv)?;
        }
        let (hash, digest) = op.input.finish(&op.plan).map_err(mech_rv)?;
        let sig = self.tpm_sign(h, op.key, &op.plan, hash, &digest)?;
        Ok(SignOutput::Signature(sig))
    }

    /// The key's authValue: empty, or HMAC(token secret, id) with the secret from
    /// the login (unsealed now for an older key of a no-PIN token).
    fn key_auth(&mut self, slot: usize, record: &KeyRecord) -> Result<Zeroizing<Vec<u8>>, Rv> {
        if record.empty_auth {
            return Ok(Zeroizing::new(Vec::new()));
        }
        let id = from_hex(&record.id, std::path::Path::new(&record.id))
            .map_err(|_| CKR_GENERAL_ERROR)?;
        if let Some(Login::User(Some(secret))) = &self.slots[slot].login {
            return Ok(crate::token::key_auth(secret, &id));
        }
        if !self.slots[slot].token.no_pin {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        let label = self.slots[slot].label.clone();
        let secret = self.with_connected(|app, c| app.unseal_token(c, &label, b"", false))?;
        let auth = crate::token::key_auth(&secret, &id);
        self.slots[slot].login = Some(Login::User(Some(secret)));
        Ok(auth)
    }

    /// The loaded key of private object `oh`, loading it (parent authorized with
    /// the SRK's empty password: nothing secret) if needed.
    fn loaded(&mut self, oh: CK_OBJECT_HANDLE) -> Result<LoadedKey, Rv> {
        let wrapped = self
            .objects
            .get((oh as usize).wrapping_sub(1))
            .and_then(|o| o.as_ref())
            .map(|o| o.wrapped.clone())
            .ok_or(CKR_KEY_HANDLE_INVALID)?;
        let conn = self.conn()?;
        if let Some((_, k)) = conn.loaded.iter().find(|(h, _)| *h == oh) {
            return Ok(k.clone());
        }
        if conn.loaded.len() >= MAX_LOADED {
            let (_, old) = conn.loaded.remove(0);
            let _ = conn.tpm.flush(old.handle);
        }
        let r = ops::load_key_with(&mut conn.tpm, &conn.srk, Auth::EmptyPassword, &wrapped);
        match r {
            Ok(k) => {
                conn.loaded.push((oh, k.clone()));
                Ok(k)
            }
            Err(e) => Err(self.fail(&e)),
        }
    }

    fn unload(&mut self, oh: CK_OBJECT_HANDLE) {
        if let Some(conn) = self.conn.as_mut() {
            if let Some(pos) = conn.loaded.iter().position(|(h, _)| *h == oh) {
                let (_, k) = conn.loaded.remove(pos);
                let _ = conn.tpm.flush(k.handle);
            }
        }
    }

    /// One TPM2_Sign (after the key is loaded once).
    fn tpm_sign(
        &mut self,
        h: CK_SESSION_HANDLE,
        oh: CK_OBJECT_HANDLE,
        plan: &SignPlan,
        hash: crate::crypto::hash::HashAlg,
        digest: &[u8],
    ) -> Result<Vec<u8>, Rv> {
        let (slot, record) = {
            let o = self.object(h, oh)?;
            (o.slot, o.record.clone())
        };
        let auth = self.key_auth(slot, &record)?;
        let key = self.loaded(oh)?;
        let hash_id = tpm_commands::constants::TpmAlgId(hash.alg_id());
        let sig = if auth.is_empty() {
            let conn = self.conn()?;
            ops::sign_with(
                &mut conn.tpm,
                &key,
                Auth::EmptyPassword,
                digest,
                plan.scheme,
                hash_id,
            )
            .map_err(|e| self.fail(&e))?
        } else {
            self.with_connected(|_, c| {
                ops::sign(
                    &mut c.tpm,
                    &key,
                    &mut c.session,
                    &auth,
                    digest,
                    plan.scheme,
                    hash_id,
                )
            })?
        };
        mechanisms::format_signature(&sig, plan).map_err(|what| {
            diagnose(&Error::Integrity {
                cc: tpm_commands::constants::TpmCc::SIGN,
                what,
            });
            CKR_DEVICE_ERROR
        })
    }

    // ---- key generation, PINs, random ----

    /// C_GenerateKeyPair: a key made in the TPM, recorded in the token. Returns
    /// (public, private) object handles.
    ///
    /// # Errors
    /// CKR_SESSION_READ_ONLY, CKR_USER_NOT_LOGGED_IN, CKR_TEMPLATE_INCONSISTENT
    /// (a label or id in use), TPM errors.
    pub fn generate_key_pair(
        &mut self,
        h: CK_SESSION_HANDLE,
        req: KeyPairRequest,
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE), Rv> {
        let s = self.session(h)?;
        let (slot, rw) = (s.slot, s.rw);
        if !rw {
            return Err(CKR_SESSION_READ_ONLY);
        }
        if !self.user_logged_in(slot) {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        let token = self.slots[slot].label.clone();
        let mut id = req.id.clone();
        if id.is_none() {
            let mut r = [0u8; 8];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut r);
            id = Some(r.to_vec());
        }
        let id = id.unwrap_or_default();
        let label = req
            .label
            .clone()
            .unwrap_or_else(|| format!("key-{}", to_hex(&id)));
        {
            let app = self.app()?;
            let (keys, _) = app
                .store
                .read_keys(&token)
                .map_err(|e| rv_of(&Error::Store(e)))?;
            if keys.iter().any(|k| k.label == label || k.id == to_hex(&id)) {
                return Err(CKR_TEMPLATE_INCONSISTENT);
            }
        }
        let secret = match &self.slots[slot].login {
            Some(Login::User(Some(s))) => Some(s.clone()),
            _ => None,
        };
        let alg = req.alg;
        let rec = self.with_connected(|app, c| {
            let unlock = match &secret {
                Some(s) => Unlock::Secret(s),
                None => Unlock::Pin(b""),
            };
            app.add_key_on(
                c,
                &token,
                &label,
                Some(&id),
                alg,
                unlock,
                false,
                |c, auth| ops::create_key(&mut c.tpm, &c.srk, &mut c.session, alg, auth),
            )
        })?;
        self.refresh_objects(slot);
        let mut public = 0;
        let mut private = 0;
        for (i, o) in self.objects.iter().enumerate() {
            if let Some(o) = o
                .as_ref()
                .filter(|o| o.slot == slot && o.record.id == rec.id)
            {
                match o.class {
                    Class::Public => public = (i + 1) as CK_OBJECT_HANDLE,
                    Class::Private => private = (i + 1) as CK_OBJECT_HANDLE,
                }
            }
        }
        if public == 0 || private == 0 {
            return Err(CKR_GENERAL_ERROR);
        }
        Ok((public, private))
    }

    /// C_InitPIN: the SO (logged in) sets a new user PIN: the token secret is
    /// sealed again under it.
    ///
    /// # Errors
    /// CKR_USER_NOT_LOGGED_IN unless the SO is logged in; CKR_SESSION_READ_ONLY.
    pub fn init_pin(&mut self, h: CK_SESSION_HANDLE, pin: &[u8]) -> Result<(), Rv> {
        let s = self.session(h)?;
        let (slot, rw) = (s.slot, s.rw);
        if !rw {
            return Err(CKR_SESSION_READ_ONLY);
        }
        let Some(Login::So(secret)) = &self.slots[slot].login else {
            return Err(CKR_USER_NOT_LOGGED_IN);
        };
        if pin.is_empty() {
            return Err(CKR_PIN_LEN_RANGE);
        }
        let secret = secret.clone();
        let label = self.slots[slot].label.clone();
        self.with_connected(|app, c| {
            let seal = ops::seal(
                &mut c.tpm,
                &c.srk,
                &mut c.session,
                &secret,
                &crate::token::pin_auth(pin),
                None,
            )?;
            app.set_user_seal(c, &label, &seal)
        })?;
        self.refresh_slots();
        Ok(())
    }

    /// C_SetPIN: the SO PIN when the SO is logged in, else the user PIN (the old
    /// PIN proven to the TPM by TPM2_ObjectChangeAuth).
    ///
    /// # Errors
    /// CKR_PIN_INCORRECT, CKR_SESSION_READ_ONLY, CKR_PIN_LEN_RANGE.
    pub fn set_pin(&mut self, h: CK_SESSION_HANDLE, old: &[u8], new: &[u8]) -> Result<(), Rv> {
        let s = self.session(h)?;
        let (slot, rw) = (s.slot, s.rw);
        if !rw {
            return Err(CKR_SESSION_READ_ONLY);
        }
        if self.slots[slot].token.no_pin {
            return Err(CKR_FUNCTION_NOT_SUPPORTED);
        }
        if new.is_empty() {
            return Err(CKR_PIN_LEN_RANGE);
        }
        let so = matches!(self.slots[slot].login, Some(Login::So(_)));
        let label = self.slots[slot].label.clone();
        self.with_connected(|app, c| app.change_pin_on(c, &label, old, new, so))?;
        self.refresh_slots();
        Ok(())
    }

    /// C_GenerateRandom: TPM random bytes, encrypted on the bus.
    ///
    /// # Errors
    /// TPM errors.
    pub fn random(&mut self, h: CK_SESSION_HANDLE, n: usize) -> Result<Zeroizing<Vec<u8>>, Rv> {
        self.session(h)?;
        self.with_connected(|_, c| {
            crate::random::get_random_encrypted(&mut c.tpm, &mut c.session, n)
        })
    }

    /// Parses C_GenerateKeyPair's templates.
    ///
    /// # Errors
    /// CKR_MECHANISM_INVALID, CKR_TEMPLATE_INCOMPLETE, CKR_TEMPLATE_INCONSISTENT,
    /// CKR_KEY_SIZE_RANGE, CKR_CURVE_NOT_SUPPORTED, CKR_ATTRIBUTE_VALUE_INVALID.
    pub fn key_pair_request(
        mech: CK_MECHANISM_TYPE,
        public: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
        private: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<KeyPairRequest, Rv> {
        let get = |t: CK_ATTRIBUTE_TYPE| {
            public
                .iter()
                .chain(private.iter())
                .find(|(x, _)| *x == t)
                .map(|(_, v)| v.as_slice())
        };
        let ulong = |v: &[u8]| -> Result<CK_ULONG, Rv> {
            Ok(CK_ULONG::from_ne_bytes(
                v.try_into().map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)?,
            ))
        };
        let bool_is = |t: CK_ATTRIBUTE_TYPE, want: bool| {
            private
                .iter()
                .chain(public.iter())
                .filter(|(x, _)| *x == t)
                .all(|(_, v)| v.first().map(|b| *b != 0) == Some(want))
        };
        // Token objects only; the private key never leaves the TPM.
        if !bool_is(CKA_TOKEN, true)
            || !bool_is(CKA_EXTRACTABLE, false)
            || !bool_is(CKA_SENSITIVE, true)
        {
            return Err(CKR_TEMPLATE_INCONSISTENT);
        }
        let alg = match mech {
            CKM_EC_KEY_PAIR_GEN => match get(CKA_EC_PARAMS) {
                Some(p) if p == P256_PARAMS => KeyAlgorithm::Ecc256,
                Some(p) if p == P384_PARAMS => KeyAlgorithm::Ecc384,
                Some(_) => return Err(CKR_CURVE_NOT_SUPPORTED),
                None => return Err(CKR_TEMPLATE_INCOMPLETE),
            },
            CKM_RSA_PKCS_KEY_PAIR_GEN => {
                if let Some(e) = get(CKA_PUBLIC_EXPONENT) {
                    let e: Vec<u8> = e.iter().copied().skip_while(|b| *b == 0).collect();
                    if e != [1, 0, 1] {
                        return Err(CKR_TEMPLATE_INCONSISTENT);
                    }
                }
                match get(CKA_MODULUS_BITS).map(ulong).transpose()? {
                    Some(2048) => KeyAlgorithm::Rsa2048,
                    Some(3072) => KeyAlgorithm::Rsa3072,
                    Some(4096) => KeyAlgorithm::Rsa4096,
                    Some(_) => return Err(CKR_KEY_SIZE_RANGE),
                    None => return Err(CKR_TEMPLATE_INCOMPLETE),
                }
            }
            _ => return Err(CKR_MECHANISM_INVALID),
        };
        let label = match get(CKA_LABEL) {
            Some(l) => {
                Some(String::from_utf8(l.to_vec()).map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)?)
            }
            None => None,
        };
        let id = get(CKA_ID).map(<[u8]>::to_vec);
        if id.as_ref().is_some_and(|i| i.is_empty() || i.len() > 32)
            || label
                .as_ref()
                .is_some_and(|l| l.is_empty() || l.len() > 255)
        {
            return Err(CKR_ATTRIBUTE_VALUE_INVALID);
        }
        Ok(KeyPairRequest { alg, label, id })
    }
}

/// C_Finalize (or the process's exit): what the module loaded is flushed when the
/// Tpm closes. `TPMKEY_PKCS11_STATS=1` then prints how many TPM commands the module
/// sent in all, on stderr.
impl Drop for Module {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let sent = conn.tpm.close();
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
