//! C_Login and C_Logout (PKCS#11 2.40 Base §5.6): the TPM checks the PIN by
//! unsealing the token secret.

use super::{Login, Module, Rv};
use cryptoki_sys::*;

impl Module {
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

    pub(super) fn user_logged_in(&self, slot: usize) -> bool {
        let s = &self.slots[slot];
        s.token.no_pin || matches!(s.login, Some(Login::User(_)))
    }
}
