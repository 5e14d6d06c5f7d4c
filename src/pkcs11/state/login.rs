//! C_Login and C_Logout (PKCS#11 2.40 Base §5.6): the TPM checks the PIN by
//! unsealing the token secret; refused PINs are counted for the PIN flags of
//! C_GetTokenInfo (§3.2 CK_TOKEN_INFO).

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
                // on a TPM without a resource manager. A retry connects again.
                // (A refused PIN was counted for the PIN flags by `unseal_token`.)
                self.close_conn();
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
            s.ops.decrypt = None;
        }
        // §5.6 C_Logout: the private session objects of the token are destroyed.
        let private: Vec<usize> = self
            .objects
            .iter()
            .enumerate()
            .filter(|(_, o)| {
                o.as_ref()
                    .is_some_and(|o| o.slot == slot && o.session.is_some() && o.is_private())
            })
            .map(|(i, _)| i)
            .collect();
        for i in private {
            self.objects[i] = None;
            self.unload((i + 1) as CK_OBJECT_HANDLE);
        }
        Ok(())
    }

    pub(super) fn user_logged_in(&self, slot: usize) -> bool {
        let s = &self.slots[slot];
        s.token.no_pin || matches!(s.login, Some(Login::User(_)))
    }
}

/// The CKF_USER_PIN_* and CKF_SO_PIN_* flags of a PIN token, from its failure
/// counts and the TPM's dictionary-attack counters as last read (no TPM command).
pub(super) fn pin_flags(
    token: &crate::store::TokenRecord,
    lockout: Option<&crate::store::LockoutRecord>,
) -> CK_FLAGS {
    use crate::tpm_facts::pin_status;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let user = pin_status(token.user_pin_failures, lockout, now);
    let so = pin_status(token.so_pin_failures, lockout, now);
    let mut f = 0;
    for (on, flag) in [
        (user.count_low, CKF_USER_PIN_COUNT_LOW),
        (user.final_try, CKF_USER_PIN_FINAL_TRY),
        (user.locked, CKF_USER_PIN_LOCKED),
        (
            so.count_low && token.so_seal.is_some(),
            CKF_SO_PIN_COUNT_LOW,
        ),
        (
            so.final_try && token.so_seal.is_some(),
            CKF_SO_PIN_FINAL_TRY,
        ),
        (so.locked && token.so_seal.is_some(), CKF_SO_PIN_LOCKED),
    ] {
        if on {
            f |= flag;
        }
    }
    f
}
