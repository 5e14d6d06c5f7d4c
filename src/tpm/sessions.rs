//! Starting sessions (Part 3 §11.1 TPM2_StartAuthSession): the session layer
//! prepares the command and the salt ([`SessionRequest`]), this sends it and hands
//! the TPM's answer back to make the session.

use super::Tpm;
use crate::error::Result;
use crate::session::start::{SessionParams, SessionRequest};
use crate::session::AuthSession;

impl Tpm {
    /// Starts a session: HMAC or policy, salted to a loaded key and/or bound to an
    /// entity as `p` says (Part 1 §19.6.8-19.6.12). The session has continueSession
    /// set and no decrypt/encrypt attributes; set those per command.
    ///
    /// # Errors
    /// Transport or TPM errors; a salt key the host cannot encrypt to; a nonceTPM of
    /// the wrong size (the session is flushed).
    pub fn start_session(&mut self, p: &SessionParams<'_>) -> Result<AuthSession> {
        let req = SessionRequest::new(p)?;
        let rsp = {
            let names: [&[u8]; 2] = [&req.names[0], &req.names[1]];
            self.execute(&req.command, &names, &mut [])?
        };
        match req.finish(rsp.session_handle, rsp.nonce_tpm.as_bytes()) {
            Ok(s) => Ok(s),
            Err(e) => {
                let _ = self.flush(rsp.session_handle);
                Err(e)
            }
        }
    }
}
