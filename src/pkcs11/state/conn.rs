//! The TPM connection behind the module: opened at the first operation that needs
//! it, with the pinned SRK and one salted session, kept until C_Finalize.

use super::{diagnose, rv_of, Conn, Module, Rv};
use crate::app::{App, Connected};
use crate::error::Error;
use crate::keys::srk::Srk;
use crate::session::start::{start_session, SessionParams};
use crate::store::from_hex;
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

    /// The connection, opened (TPM, pinned SRK) on first use.
    pub(super) fn conn(&mut self) -> Result<&mut Conn, Rv> {
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
    pub(super) fn flush_session(&mut self) {
        if let Some(c) = self.conn.as_mut() {
            if let Some(mut s) = c.session.take() {
                let _ = c.tpm.flush_session(&mut s);
            }
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
        let rv = rv_of(e);
        self.check_conn(e);
        rv
    }

    /// Asks the TPM for its SRK and compares it with the pinned one: the error to
    /// report when they differ (or the SRK is gone).
    pub(super) fn srk_mismatch(&mut self) -> Option<Error> {
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
    pub(super) fn check_conn(&mut self, e: &Error) {
        if matches!(e, Error::Transport(_)) {
            if let Some(c) = self.conn.take() {
                std::mem::forget(c.tpm);
            }
        }
    }

    /// Runs `f` on a [`Connected`] (TPM, SRK and salted session), starting the
    /// session if needed, and puts the connection back afterwards.
    pub(super) fn with_connected<T>(
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
}
