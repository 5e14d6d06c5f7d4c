//! Persistent objects (Part 3 §28.5 TPM2_EvictControl, owner authorization with
//! the empty owner password): the SRK at 0x81000001, and each PIN token's user seal
//! in [`TOKEN_SEALS`], so that a login unseals it without a TPM2_Load and a
//! TPM2_FlushContext first.

use std::ops::RangeInclusive;

use tpm_commands::commands::{EvictControl, GetCapability, ReadPublic};
use tpm_commands::constants::{TpmCap, TpmHandle};
use tpm_commands::rc::ResponseCode;
use tpm_commands::structures::TpmsCapabilityData;

use super::ops::{load_key_with, WrappedKey};
use super::public::object_name;
use super::srk::Srk;
use crate::error::{Error, Result};
use crate::tpm::{Auth, Tpm};

/// Where token seals go: owner persistent handles (Part 2 §7.5), clear of the SRK's
/// 0x81000001 and of the low handles other tools use.
pub const TOKEN_SEALS: RangeInclusive<u32> = 0x8100_0100..=0x8100_01ff;

/// TPM2_EvictControl: makes `object` persistent at `persistent`, or (with
/// `object == persistent`) removes a persistent object. Ok(false), changing nothing,
/// when the owner hierarchy has a password, is disabled, or NV has no room.
///
/// # Errors
/// Transport errors and unexpected TPM errors.
pub fn evict_control(
    tpm: &mut Tpm,
    object: TpmHandle,
    object_name: &[u8],
    persistent: TpmHandle,
) -> Result<bool> {
    let cmd = EvictControl {
        auth: TpmHandle::RH_OWNER,
        object_handle: object,
        persistent_handle: persistent,
    };
    let owner = TpmHandle::RH_OWNER.0.to_be_bytes();
    match tpm.execute(&cmd, &[&owner, object_name], &mut [Auth::EmptyPassword]) {
        Ok(_) => Ok(true),
        Err(Error::Tpm { rc, .. })
            if matches!(
                rc.base(),
                ResponseCode::BAD_AUTH
                    | ResponseCode::AUTH_FAIL
                    | ResponseCode::NV_SPACE
                    | ResponseCode::NV_DEFINED
                    | ResponseCode::HIERARCHY
                    | ResponseCode::LOCKOUT
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Makes a transient SRK persistent at 0x81000001 (owner authorization with the
/// empty owner password) and flushes the transient copy. Returns false, changing
/// nothing, when the owner hierarchy has a password or the TPM has no room: the SRK
/// then stays transient and is derived again by each process.
///
/// # Errors
/// Transport errors and unexpected TPM errors.
pub fn make_srk_persistent(tpm: &mut Tpm, srk: &mut Srk) -> Result<bool> {
    if srk.persistent {
        return Ok(true);
    }
    if !evict_control(tpm, srk.handle, &srk.name, TpmHandle::SRK)? {
        return Ok(false);
    }
    tpm.flush(srk.handle)?;
    srk.handle = TpmHandle::SRK;
    srk.persistent = true;
    Ok(true)
}

/// The first handle of `range` that holds no persistent object (Part 3 §30.2
/// TPM2_GetCapability, TPM_CAP_HANDLES).
///
/// # Errors
/// Transport or TPM errors.
pub fn free_handle(tpm: &mut Tpm, range: RangeInclusive<u32>) -> Result<Option<TpmHandle>> {
    let rsp = tpm.run(&GetCapability {
        capability: TpmCap::HANDLES,
        property: *range.start(),
        property_count: range.end() - range.start() + 1,
    })?;
    let taken: Vec<u32> = match rsp.capability_data {
        TpmsCapabilityData::Handles(list) => list.0.into_iter().map(|h| h.0).collect(),
        _ => Vec::new(),
    };
    Ok(range
        .into_iter()
        .find(|h| !taken.contains(h))
        .map(TpmHandle))
}

/// Loads `blob` under the SRK and makes it persistent at `handle` (which the caller
/// found free and recorded as intended, so that a crash after this call leaves a
/// trace); the transient copy is flushed. False when the TPM keeps no more
/// persistent objects for us or `handle` was taken meanwhile (the object then
/// stays a blob on disk, loaded when needed).
///
/// # Errors
/// Transport or TPM errors: then the caller cannot know whether the object was
/// made persistent, and must settle its recorded intent later with [`holds`].
pub fn persist_at(tpm: &mut Tpm, srk: &Srk, blob: &WrappedKey, handle: TpmHandle) -> Result<bool> {
    let loaded = load_key_with(tpm, srk, Auth::EmptyPassword, blob)?;
    let made = evict_control(tpm, loaded.handle, &loaded.name, handle);
    let flushed = tpm.flush(loaded.handle);
    let made = made?;
    flushed?;
    Ok(made)
}

/// True when the persistent object at `handle` is `blob`'s (same Name), asked with
/// TPM2_ReadPublic; false only for a definite answer: another object is there, or
/// none (TPM_RC_HANDLE).
///
/// # Errors
/// Transport errors and other TPM answers (then it is unknown, and nothing may be
/// forgotten or assumed gone); a public area that does not hash.
pub fn holds(tpm: &mut Tpm, handle: TpmHandle, blob: &WrappedKey) -> Result<bool> {
    let want = object_name(&blob.public)?;
    match tpm.run(&ReadPublic {
        object_handle: handle,
    }) {
        Ok(rsp) => Ok(rsp.name.as_bytes() == want.as_slice()),
        Err(Error::Tpm { rc, .. }) if rc.base() == ResponseCode::HANDLE => Ok(false),
        Err(e) => Err(e),
    }
}

/// What [`evict`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evicted {
    /// The object was there and is gone.
    Removed,
    /// `handle` does not hold `blob`'s object (gone already, or another object,
    /// which is left alone).
    NotThere,
    /// It is there, and the TPM refused to remove it (the owner hierarchy has a
    /// password, or is disabled).
    Refused,
}

/// Removes the persistent copy of `blob` at `handle`, if that is what it holds:
/// never another object.
///
/// # Errors
/// Transport errors and unexpected TPM errors.
pub fn evict(tpm: &mut Tpm, handle: TpmHandle, blob: &WrappedKey) -> Result<Evicted> {
    if !holds(tpm, handle, blob)? {
        return Ok(Evicted::NotThere);
    }
    Ok(
        if evict_control(tpm, handle, &object_name(&blob.public)?, handle)? {
            Evicted::Removed
        } else {
            Evicted::Refused
        },
    )
}
