//! [`Connected`]: a TPM with the pinned SRK and a salted session, and the keys
//! loaded for signing — the one way the CLI and the PKCS#11 module hold a
//! connection, let go of it, and come back to it (re-exported as
//! [`crate::app::Connected`]).
//!
//! The CLI holds one for one command. The module holds one for its life and lets
//! go of the TPM after every call ([`Connected::release`]); before it uses what it
//! kept, [`Connected::refresh`] comes back to the TPM and makes that usable again:
//!
//! - When the TPM's flush epoch changed (another tpmkey process made room by
//!   flushing what it did not load, see [`crate::tpm`]), the session, loaded keys and
//!   a transient SRK are taken as gone — not flushed: their handles may belong to
//!   others now — and made again on use: the session is salted to the SRK whose
//!   public area is pinned, a key loads under the SRK with its empty password, so
//!   neither needs the PIN; the key's authValue comes from the token secret the
//!   login unsealed.
//! - [`Connected::use_key`] (signatures, decryptions, ECDH) also recovers from
//!   handles another program flushed without a word: when the key or the session
//!   is gone ([`crate::tpm::handle_gone`]), or a refused authorization with a key
//!   kept from an earlier operation turns out to be another object at its handle
//!   (TPM2_ReadPublic: the Name recomputed from its public area is not the one
//!   loaded) or, the key being ours, to come from a session kept from an earlier
//!   operation, everything kept is forgotten, the flush epoch bumped for the other
//!   tpmkey processes (their handles went the same way: they must not try handle
//!   numbers that this process is about to take), the session started and the key
//!   loaded again, and the command retried. A refused authorization counts against
//!   the TPM's dictionary-attack counter when the object at the handle is
//!   protected by it: the epoch spares tpmkey's users that after a tpmkey process
//!   flushed or noticed a flush; the one that first meets a silently reused handle
//!   cannot be spared.
//!
//! A handle is never used for a signature under another Name: the session HMAC
//! covers cpHash, which covers the Name of the key handle (Part 1 §18.7), so the
//! TPM refuses an authorization meant for our key on any other object, and a
//! response HMAC that verifies proves the session is ours (§19.6.5). That is why
//! the module signs keys with no authValue through the session too: a password
//! session would let a swapped handle sign. While this process is the only user of
//! the TPM, none of this costs a TPM command: one TPM2_Sign per signature.

use tpm_commands::commands::ReadPublic;
use tpm_commands::constants::TpmAlgId;
use tpm_commands::rc::ResponseCode;
use tpm_commands::structures::TpmtSignature;

use crate::error::{Error, Result};
use crate::keys::ops::{self, LoadedKey, WrappedKey};
use crate::keys::public::object_name;
use crate::keys::srk::Srk;
use crate::session::start::SessionParams;
use crate::session::AuthSession;
use crate::tpm::{handle_gone, Auth, Tpm};

/// How many signing keys stay loaded at once through a resource manager (which
/// gives each connection three object slots): one is left for a token seal.
pub const MAX_LOADED: usize = 2;

/// How many stay loaded on a TPM without one, where every process shares the three
/// slots a TPM has at least (TPM_PT_HR_TRANSIENT_MIN): another process's TPM2_Load
/// needs two of them, one for the key and one for its persistent parent, which the
/// TPM loads into a slot for the command (ms-tpm-20-ref and libtpms do).
pub const MAX_LOADED_RAW: usize = 1;

/// A key loaded for signing, the [`Tpm::generation`] it was loaded in, and the
/// hold of the TPM in which it was loaded or last found to be ours.
struct Cached {
    name: Vec<u8>,
    key: LoadedKey,
    generation: u64,
    hold: u64,
}

/// A connection ready for secret-bearing commands.
pub struct Connected {
    /// The TPM.
    pub tpm: Tpm,
    /// The pinned SRK.
    pub srk: Srk,
    /// A salted HMAC session to it.
    pub session: AuthSession,
    /// The generation the session was started in.
    session_generation: u64,
    /// The generation a transient SRK was loaded in.
    srk_generation: u64,
    /// Counts the holds of the TPM: one more at every release. What was made in
    /// the current hold cannot have been touched by another process.
    hold: u64,
    /// The hold the session was started in.
    session_hold: u64,
    /// Loaded signing keys, oldest first.
    loaded: Vec<Cached>,
}

impl core::fmt::Debug for Connected {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connected")
            .field("tpm", &self.tpm)
            .field("session", &self.session)
            .field("loaded", &self.loaded.len())
            .finish_non_exhaustive()
    }
}

/// A refused authorization (wrong HMAC): TPM_RC_AUTH_FAIL or TPM_RC_BAD_AUTH.
fn auth_refused(e: &Error) -> bool {
    e.response_code()
        .is_some_and(|rc| matches!(rc.base(), ResponseCode::AUTH_FAIL | ResponseCode::BAD_AUTH))
}

impl Connected {
    /// Starts the salted session to `srk` (whose Name the caller has pinned) on
    /// `tpm`.
    ///
    /// # Errors
    /// Transport or TPM errors; an SRK the host cannot salt to.
    pub fn start(mut tpm: Tpm, srk: Srk) -> Result<Connected> {
        let session = tpm.start_session(&SessionParams::salted_hmac(&srk.salt_key()?))?;
        let generation = tpm.generation();
        Ok(Connected {
            tpm,
            srk,
            session,
            session_generation: generation,
            srk_generation: generation,
            hold: 0,
            session_hold: 0,
            loaded: Vec::new(),
        })
    }

    /// Lets other processes at a TPM without a resource manager until the next
    /// command (see [`Tpm::release`]); the session and loaded keys stay in the TPM.
    pub fn release(&mut self) {
        self.tpm.release();
        self.hold += 1;
    }

    /// Comes back to the TPM ([`Tpm::acquire`]) and makes what this connection keeps
    /// usable: when another process may have flushed it, loads a transient SRK
    /// again (it must have the pinned Name), forgets the loaded keys and starts a
    /// new session. No TPM command when nothing changed.
    ///
    /// # Errors
    /// The TPM cannot be reached or is busy; TPM errors; another TPM.
    pub fn refresh(&mut self) -> Result<()> {
        self.tpm.acquire()?;
        let now = self.tpm.generation();
        if self.srk_generation != now {
            if !self.srk.persistent {
                self.reload_srk()?;
            }
            self.srk_generation = now;
        }
        self.loaded.retain(|c| c.generation == now);
        if self.session_generation != now || !self.session.is_open() || self.session.is_broken() {
            self.restart_session()?;
        }
        Ok(())
    }

    /// Derives the transient SRK again; it must be the one pinned.
    fn reload_srk(&mut self) -> Result<()> {
        let srk = Srk::load(&mut self.tpm, self.srk.kind)?;
        srk.check_pinned(&self.srk.name)?;
        self.srk = srk;
        self.srk_generation = self.tpm.generation();
        Ok(())
    }

    /// Starts a new salted session in place of the current one, flushing the old
    /// one only when it is surely still ours.
    pub fn restart_session(&mut self) -> Result<()> {
        if self.session.is_open()
            && self.session_generation == self.tpm.generation()
            && self.tpm.owns(self.session.handle())
        {
            let _ = self.tpm.flush_session(&mut self.session);
        }
        self.session = self
            .tpm
            .start_session(&SessionParams::salted_hmac(&self.srk.salt_key()?))?;
        self.session_generation = self.tpm.generation();
        self.session_hold = self.hold;
        Ok(())
    }

    /// The loaded key for `wrapped`, loading it (parent authorized with the SRK's
    /// empty password: nothing secret) when it is not; at most [`MAX_LOADED`]
    /// ([`MAX_LOADED_RAW`] on a TPM without a resource manager) stay loaded, the
    /// oldest is flushed first.
    ///
    /// # Errors
    /// Transport or TPM errors; TPM_RC_INTEGRITY for a blob of another SRK.
    pub fn load(&mut self, wrapped: &WrappedKey) -> Result<LoadedKey> {
        let name = object_name(&wrapped.public)?;
        let now = self.tpm.generation();
        // Keys of an earlier generation may be gone, their handles another's.
        self.loaded.retain(|c| c.generation == now);
        if let Some(c) = self
            .loaded
            .iter()
            .find(|c| c.name == name && c.generation == now)
        {
            return Ok(c.key.clone());
        }
        let max = if self.tpm.has_resource_manager() {
            MAX_LOADED
        } else {
            MAX_LOADED_RAW
        };
        while self.loaded.len() >= max {
            let old = self.loaded.remove(0);
            let _ = self.tpm.flush(old.key.handle);
        }
        let key = match ops::load_key_with(&mut self.tpm, &self.srk, Auth::EmptyPassword, wrapped) {
            // A transient SRK flushed by another program.
            Err(e) if !self.srk.persistent && handle_gone(&e, Some(1), None) => {
                self.reload_srk()?;
                ops::load_key_with(&mut self.tpm, &self.srk, Auth::EmptyPassword, wrapped)?
            }
            r => r?,
        };
        self.loaded.push(Cached {
            name,
            key: key.clone(),
            generation: self.tpm.generation(),
            hold: self.hold,
        });
        Ok(key)
    }

    /// Flushes `wrapped`'s key if it is loaded (a destroyed object).
    pub fn unload(&mut self, wrapped: &WrappedKey) {
        let Ok(name) = object_name(&wrapped.public) else {
            return;
        };
        let now = self.tpm.generation();
        if let Some(pos) = self.loaded.iter().position(|c| c.name == name) {
            let c = self.loaded.remove(pos);
            if c.generation == now {
                let _ = self.tpm.flush(c.key.handle);
            }
        }
    }

    /// True when `key.handle` holds the object `key` names: TPM2_ReadPublic, the
    /// Name recomputed from the public area it returns (Part 1 §16).
    fn still_holds(&mut self, key: &LoadedKey) -> Result<bool> {
        match self.tpm.run(&ReadPublic {
            object_handle: key.handle,
        }) {
            Ok(rsp) => Ok(match rsp.out_public.0 {
                Some(p) => object_name(&p)? == key.name,
                None => false,
            }),
            Err(e) if handle_gone(&e, Some(1), None) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Signs `digest` with `wrapped`'s key, authorized through the salted session
    /// with `auth` (empty for a key without one): one TPM2_Sign once the key is
    /// loaded (see [`Connected::use_key`]).
    ///
    /// # Errors
    /// Transport or TPM errors; TPM_RC_AUTH_FAIL for a wrong authValue.
    pub fn sign(
        &mut self,
        wrapped: &WrappedKey,
        auth: &[u8],
        digest: &[u8],
        scheme: TpmAlgId,
        hash: TpmAlgId,
    ) -> Result<TpmtSignature> {
        self.use_key(wrapped, |tpm, key, session| {
            ops::sign(tpm, key, session, auth, digest, scheme, hash)
        })
    }

    /// Runs `op` — one command that uses `wrapped`'s key as its first, authorized
    /// handle in the salted session (TPM2_Sign, TPM2_RSA_Decrypt, TPM2_ECDH_ZGen)
    /// — after [`Connected::refresh`], with the key loaded or kept loaded. A key or
    /// session another process flushed is loaded or started again and `op` run
    /// again (see the module documentation); at most three tries in all.
    ///
    /// # Errors
    /// What `op` returns; transport or TPM errors of the recovery.
    pub fn use_key<T>(
        &mut self,
        wrapped: &WrappedKey,
        mut op: impl FnMut(&mut Tpm, &LoadedKey, &mut AuthSession) -> Result<T>,
    ) -> Result<T> {
        self.refresh()?;
        let mut retries = 0;
        loop {
            let key = self.load(wrapped)?;
            let e = match op(&mut self.tpm, &key, &mut self.session) {
                Ok(out) => return Ok(out),
                Err(e) => e,
            };
            if retries == 2 {
                return Err(e);
            }
            retries += 1;
            if handle_gone(&e, Some(1), Some(1)) {
                self.flushed_by_another()?;
                continue;
            }
            if !auth_refused(&e) {
                return Err(e);
            }
            // A key kept from an earlier hold may have been flushed and its handle
            // given to another object: its Name tells.
            if self.carried(&key) {
                if !self.still_holds(&key)? {
                    self.flushed_by_another()?;
                    continue;
                }
                self.verified(&key);
            }
            // The key is ours: a session kept from an earlier hold may be another
            // process's now.
            if self.session_hold != self.hold {
                self.flushed_by_another()?;
                continue;
            }
            return Err(e);
        }
    }

    /// Another process flushed what this connection kept (see
    /// [`Tpm::flushed_by_another`]): forgets it all and makes the session (and a
    /// transient SRK) again; keys load again on use.
    fn flushed_by_another(&mut self) -> Result<()> {
        self.tpm.flushed_by_another();
        self.refresh()
    }

    /// True when `key` was loaded (or last checked) before the current hold.
    fn carried(&self, key: &LoadedKey) -> bool {
        self.loaded
            .iter()
            .any(|c| c.key.handle == key.handle && c.hold != self.hold)
    }

    /// Records that `key` was found to be ours in the current hold.
    fn verified(&mut self, key: &LoadedKey) {
        let hold = self.hold;
        for c in self
            .loaded
            .iter_mut()
            .filter(|c| c.key.handle == key.handle)
        {
            c.hold = hold;
        }
    }

    /// Runs `f` (commands in the salted session) after [`Connected::refresh`]; when
    /// the session turns out to have been flushed by another program
    /// (TPM_RC_REFERENCE_S0: the command did not run), starts a new one and runs
    /// `f` once more.
    ///
    /// # Errors
    /// What `f` returns; as [`Connected::refresh`].
    pub fn run<T>(&mut self, mut f: impl FnMut(&mut Connected) -> Result<T>) -> Result<T> {
        self.refresh()?;
        match f(self) {
            Err(e) if handle_gone(&e, None, Some(1)) && self.session_hold != self.hold => {
                self.flushed_by_another()?;
                f(self)
            }
            other => other,
        }
    }

    /// Flushes what this connection loaded and closes it; returns how many command
    /// frames it sent in all.
    pub fn close(self) -> u64 {
        self.tpm.close()
    }
}
