//! Random bytes from the TPM (Part 3 §16.1 TPM2_GetRandom), and seeding its RNG
//! (§16.2 TPM2_StirRandom).

use tpm_commands::commands::GetRandom;

use crate::error::Result;
use crate::tpm::Tpm;

/// Reads `n` random bytes from the TPM's RNG, in as many TPM2_GetRandom calls as
/// the TPM's per-call limit (its largest digest size) needs.
///
/// # Errors
/// Transport or TPM errors; a TPM that returns no bytes.
pub fn get_random(tpm: &mut Tpm, n: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let want = u16::try_from((n - out.len()).min(64)).unwrap_or(64);
        let rsp = tpm.run(&GetRandom {
            bytes_requested: want,
        })?;
        let got = rsp.random_bytes.as_bytes();
        if got.is_empty() {
            return Err(crate::error::Error::Usage(
                "the TPM returned no random bytes".into(),
            ));
        }
        out.extend_from_slice(&got[..got.len().min(n - out.len())]);
    }
    Ok(out)
}

/// Like [`get_random`], but each TPM2_GetRandom rides in `session` (salted) with
/// `encrypt` set (Part 1 §21.3): the bytes cross the bus AES-CFB encrypted, so
/// someone watching it does not learn what an application makes keys from.
///
/// # Errors
/// Transport or TPM errors; a TPM that returns no bytes.
pub fn get_random_encrypted(
    tpm: &mut Tpm,
    session: &mut crate::session::AuthSession,
    n: usize,
) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    use tpm_commands::attributes::TpmaSession;
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(n));
    let keep = session.attributes();
    session.set_attributes(TpmaSession::CONTINUE_SESSION | TpmaSession::ENCRYPT);
    let result = (|| {
        while out.len() < n {
            let want = u16::try_from((n - out.len()).min(64)).unwrap_or(64);
            let rsp = tpm.execute(
                &GetRandom {
                    bytes_requested: want,
                },
                &[],
                &mut [crate::tpm::Auth::Extra(session)],
            )?;
            let got = rsp.random_bytes.as_bytes();
            if got.is_empty() {
                return Err(crate::error::Error::Usage(
                    "the TPM returned no random bytes".into(),
                ));
            }
            let take = got.len().min(n - out.len());
            out.extend_from_slice(&got[..take]);
        }
        Ok(())
    })();
    session.set_attributes(keep);
    result.map(|()| out)
}

/// The most bytes one TPM2_StirRandom takes (TPM2B_SENSITIVE_DATA, MAX_SYM_DATA).
pub const MAX_STIR: usize = 128;

/// Mixes `seed` (at most [`MAX_STIR`] bytes) into the TPM's RNG state with
/// TPM2_StirRandom (Part 3 §16.2), riding in `session` (salted) with `decrypt`
/// set: the seed crosses the bus AES-CFB encrypted.
///
/// # Errors
/// A seed over [`MAX_STIR`] bytes; transport or TPM errors.
pub fn stir_random(
    tpm: &mut Tpm,
    session: &mut crate::session::AuthSession,
    seed: &[u8],
) -> Result<()> {
    use tpm_commands::attributes::TpmaSession;
    use tpm_commands::buffers::Tpm2bSensitiveData;
    use tpm_commands::commands::StirRandom;
    let cmd = StirRandom {
        in_data: Tpm2bSensitiveData::new(seed.to_vec())?,
    };
    let keep = session.attributes();
    session.set_attributes(TpmaSession::CONTINUE_SESSION | TpmaSession::DECRYPT);
    let r = tpm.execute(&cmd, &[], &mut [crate::tpm::Auth::Extra(session)]);
    session.set_attributes(keep);
    r.map(|_| ())
}
