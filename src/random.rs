//! Random bytes from the TPM (Part 3 §16.1 TPM2_GetRandom).

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
