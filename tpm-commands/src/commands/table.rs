//! The command table: every command tpmkey sends, with its Part 3 section.

use crate::buffers::*;
use crate::constants::*;

tpm_commands! {
    /// Part 3 §16.1 TPM2_GetRandom.
    GetRandom / GetRandomResponse = GET_RANDOM, "TPM2_GetRandom" {
        handles {}
        params { bytes_requested: u16 }
        response_handles {}
        response { random_bytes: Tpm2bDigest }
    }

    /// Part 3 §16.2 TPM2_StirRandom.
    StirRandom / StirRandomResponse = STIR_RANDOM, "TPM2_StirRandom" {
        handles {}
        params { in_data: Tpm2bSensitiveData }
        response_handles {}
        response {}
    }

    /// Part 3 §28.4 TPM2_FlushContext. The handle to flush is a parameter, not a handle.
    FlushContext / FlushContextResponse = FLUSH_CONTEXT, "TPM2_FlushContext" {
        handles {}
        params { flush_handle: TpmHandle }
        response_handles {}
        response {}
    }
}
