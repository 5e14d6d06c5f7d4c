//! The driver's error type: transport failures, TPM response codes with their spec
//! names, malformed frames, session integrity failures.

use tpm_commands::constants::TpmCc;
use tpm_commands::rc::ResponseCode;
use tpm_commands::UnmarshalError;

use crate::transport::TransportError;

/// Errors from talking to a TPM.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TPM could not be reached or the bytes could not be moved.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The TPM answered a command with an error code.
    #[error("{cc} failed: {rc}{}", rc_hint(*.rc))]
    Tpm {
        /// The command.
        cc: TpmCc,
        /// The response code, decoded.
        rc: ResponseCode,
    },
    /// The TPM's response did not parse.
    #[error("{cc}: malformed response from the TPM: {source}")]
    Malformed {
        /// The command.
        cc: TpmCc,
        /// Where parsing failed.
        source: UnmarshalError,
    },
    /// A response failed its HMAC check, or a session answer was missing or out of
    /// place: the response was altered on the way or did not come from the TPM that
    /// holds the session key.
    #[error(
        "{cc}: response integrity check failed ({what}); the TPM connection may be tampered with"
    )]
    Integrity {
        /// The command.
        cc: TpmCc,
        /// What did not match.
        what: &'static str,
    },
    /// A request that cannot be marshalled (a buffer over its spec maximum).
    #[error("request too large: {0}")]
    Marshal(#[from] tpm_commands::codec::MarshalError),
    /// A caller error (wrong number of names or sessions for a command, …).
    #[error("{0}")]
    Usage(String),
    /// A cryptographic operation on the host failed.
    #[error("host cryptography failed: {0}")]
    Crypto(String),
    /// The TPM is not the one the keys belong to (pinned SRK Name mismatch).
    #[error("{0}")]
    WrongTpm(String),
    /// The TPM refuses PINs until its dictionary-attack counter drops.
    #[error("the TPM is in dictionary-attack lockout after too many wrong PINs: no PIN is checked until the failure counter drops ({failed} of {max} failures; one is forgiven every {interval} s, so the next try is possible in about {interval} s); this is not a wrong-PIN answer")]
    Lockout {
        /// Failures counted.
        failed: u32,
        /// Failures allowed.
        max: u32,
        /// Seconds per forgiven failure.
        interval: u32,
    },
    /// A policy session did not satisfy an object's authPolicy
    /// (TPM_RC_POLICY_FAIL): the message says why, e.g. which PCRs changed.
    #[error("{0}")]
    PolicyMismatch(String),
    /// A sealed-secret file ([`crate::sealed::SealedSecret`]) that does not parse,
    /// comes from a newer tpmkey, or does not agree with itself.
    #[error("not a usable sealed file: {0}")]
    BadSealedFile(String),
    /// The key store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl Error {
    /// The TPM response code, when this is a TPM error.
    pub fn response_code(&self) -> Option<ResponseCode> {
        match self {
            Error::Tpm { rc, .. } => Some(*rc),
            _ => None,
        }
    }
}

/// A hint for response codes a user can act on.
fn rc_hint(rc: ResponseCode) -> &'static str {
    match rc.base() {
        ResponseCode::LOCKOUT => {
            " (the TPM is in dictionary-attack lockout: wait for its recovery time, see `tpmkey info`)"
        }
        ResponseCode::AUTH_FAIL | ResponseCode::BAD_AUTH => " (wrong PIN or authorization value)",
        ResponseCode::OBJECT_MEMORY | ResponseCode::SESSION_MEMORY => {
            " (the TPM has no free slots: use /dev/tpmrm0, or flush stale handles)"
        }
        ResponseCode::INITIALIZE => " (the TPM has not been started: TPM2_Startup is needed)",
        _ => "",
    }
}

/// Result alias for the driver.
pub type Result<T, E = Error> = std::result::Result<T, E>;
