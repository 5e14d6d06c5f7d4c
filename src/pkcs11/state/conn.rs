//! The TPM connection behind the module: an [`crate::app::Connected`] (the pinned
//! SRK and one salted session, and the loaded keys) opened at the first operation
//! that needs it and kept until C_Finalize. On a TPM without a resource manager the
//! module lets go of the TPM after every call ([`Module::release`]), so that other
//! processes can use it while this one is idle; each operation comes back to it
//! and finds what it kept, or loads it again (see [`crate::connection`]).

use super::{diagnose, rv_of, Module, Rv};
use crate::app::{App, Connected};
use crate::error::Error;
use crate::keys::srk::Srk;
use crate::store::from_hex;
use crate::tpm::Tpm;
use cryptoki_sys::*;

impl Module {
    // ---- the TPM connection ----

    pub(super) fn app(&self) -> Result<&App, Rv> {
        self.app.as_ref().ok_or_else(|| {
            diagnose(&Error::Usage(
                "no tpmkey store here: run `tpmkey init` and `tpmkey token add` first".into(),
            ));
            CKR_TOKEN_NOT_PRESENT
        })
    }

    /// The connection, opened (TPM, pinned SRK, salted session) on first use.
    pub(super) fn conn(&mut self) -> Result<&mut Connected, Rv> {
        if self.conn.is_none() {
            if let Some(e) = &self.tcti_error {
                diagnose(&Error::Usage(e.clone()));
                return Err(CKR_DEVICE_ERROR);
            }
            match self.app()?.connect_pinned() {
                Ok(c) => self.conn = Some(c),
                Err(e) => return Err(self.fail(&e)),
            }
        }
        self.conn.as_mut().ok_or(CKR_GENERAL_ERROR)
    }

    /// Lets other processes at a TPM without a resource manager until the next
    /// operation (the end of every C_* call); what is loaded stays.
    pub fn release(&mut self) {
        if let Some(c) = self.conn.as_mut() {
            c.release();
        }
    }

    /// Closes the connection, flushing the session and the loaded keys (after a
    /// failed login, which is often followed by an exit that runs no destructors:
    /// ssh's fatal() ends in _exit). The next operation opens a new one.
    pub(super) fn close_conn(&mut self) {
        if let Some(c) = self.conn.take() {
            c.close();
        }
    }

    /// The return value for a failed TPM operation. An integrity or handle error may
    /// mean the TPM is not the one the store was made on (the pinned SRK is used
    /// without asking the TPM first): then say so, which the raw error would not.
    pub(super) fn fail(&mut self, e: &Error) -> Rv {
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
        rv_of(e)
    }

    /// Asks the TPM for its SRK and compares it with the pinned one: the error to
    /// report when they differ (or the SRK is gone). Uses the open connection, or
    /// a short one when none is open yet.
    pub(super) fn srk_mismatch(&mut self) -> Option<Error> {
        let app = self.app.as_ref()?;
        let pinned = app.store.read_record().ok()?.srk?;
        let want = from_hex(&pinned.name, std::path::Path::new("store.json")).ok()?;
        let mut own;
        let tpm = match self.conn.as_mut() {
            Some(c) => &mut c.tpm,
            None => {
                own = Tpm::open(&app.tcti).ok()?;
                &mut own
            }
        };
        let found = Srk::load(tpm, App::srk_kind(&pinned));
        match found {
            Ok(srk) => {
                if !srk.persistent {
                    let _ = tpm.flush(srk.handle);
                }
                srk.check_pinned(&want).err()
            }
            Err(e) => Some(e),
        }
    }

    /// Runs `f` on the [`Connected`] (TPM, SRK and salted session), after coming
    /// back to the TPM; `f` runs a second time when the session had been flushed
    /// by another program (see [`Connected::run`]).
    pub(super) fn with_connected<T>(
        &mut self,
        mut f: impl FnMut(&App, &mut Connected) -> crate::Result<T>,
    ) -> Result<T, Rv> {
        self.conn()?;
        let Module { app, conn, .. } = self;
        let (Some(app), Some(c)) = (app.as_ref(), conn.as_mut()) else {
            return Err(CKR_GENERAL_ERROR);
        };
        let r = c.run(|c| f(app, c));
        r.map_err(|e| self.fail(&e))
    }
}
