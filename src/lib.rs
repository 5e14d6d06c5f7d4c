//! tpmkey: TPM-backed keys.
