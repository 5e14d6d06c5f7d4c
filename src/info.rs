//! What TPM this is (`tpmkey info`): fixed and variable properties, algorithms,
//! curves, PCR banks, dictionary-attack state, and whether a persistent SRK exists.
//! Part 3 §30.2 TPM2_GetCapability; Part 2 §6.13 TPM_PT.

use tpm_commands::attributes::{TpmaAlgorithm, TpmaPermanent, TpmaStartupClear};
use tpm_commands::commands::{GetCapability, ReadPublic};
use tpm_commands::constants::{TpmAlgId, TpmCap, TpmEccCurve, TpmHandle, TpmPt};
use tpm_commands::rc::ResponseCode;
use tpm_commands::structures::{PublicParams, TpmsCapabilityData, TpmsTaggedProperty};

use crate::error::{Error, Result};
use crate::tpm::Tpm;

/// Dictionary-attack state (Part 1 §19.8.6; TPM_PT_LOCKOUT_*).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaState {
    /// Failed authorizations counted so far.
    pub failed_tries: u32,
    /// Failures before lockout.
    pub max_tries: u32,
    /// Seconds for the counter to drop by one.
    pub recovery_time: u32,
    /// Seconds of lockout after a failed lockoutAuth.
    pub lockout_recovery: u32,
    /// The TPM is in lockout now.
    pub in_lockout: bool,
}

/// A persistent SRK candidate at 0x81000001.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistentSrk {
    /// "ECC NIST P-256", "RSA 2048", …
    pub kind: String,
    /// Its Name, hex.
    pub name: String,
}

/// Everything `tpmkey info` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmInfo {
    /// TPM_PT_MANUFACTURER as four characters (e.g. "IBM").
    pub manufacturer: String,
    /// TPM_PT_VENDOR_STRING_1..4 joined.
    pub vendor: String,
    /// Firmware version: FIRMWARE_VERSION_1 and _2.
    pub firmware: (u32, u32),
    /// Family ("2.0").
    pub family: String,
    /// Spec level.
    pub level: u32,
    /// Spec revision, e.g. 164 for 1.64.
    pub revision: u32,
    /// Spec year and day of year.
    pub spec_date: (u32, u32),
    /// Algorithms and their kinds.
    pub algorithms: Vec<(TpmAlgId, TpmaAlgorithm)>,
    /// ECC curves.
    pub curves: Vec<TpmEccCurve>,
    /// PCR banks and how many PCRs each has allocated.
    pub pcr_banks: Vec<(TpmAlgId, u32)>,
    /// Dictionary-attack state.
    pub da: DaState,
    /// Hierarchy state.
    pub owner_auth_set: bool,
    /// The storage hierarchy is enabled.
    pub storage_enabled: bool,
    /// A persistent SRK.
    pub srk: Option<PersistentSrk>,
    /// Free transient object slots right now, if reported.
    pub transient_slots: Option<u32>,
}

fn capability(tpm: &mut Tpm, cap: TpmCap, property: u32, count: u32) -> Result<TpmsCapabilityData> {
    Ok(tpm
        .run(&GetCapability {
            capability: cap,
            property,
            property_count: count,
        })?
        .capability_data)
}

/// Reads all properties from `first` on, following `moreData`.
fn properties(tpm: &mut Tpm, first: TpmPt) -> Result<Vec<TpmsTaggedProperty>> {
    let mut out: Vec<TpmsTaggedProperty> = Vec::new();
    let mut next = first.0;
    for _ in 0..8 {
        let rsp = tpm.run(&GetCapability {
            capability: TpmCap::TPM_PROPERTIES,
            property: next,
            property_count: 128,
        })?;
        let TpmsCapabilityData::TpmProperties(list) = rsp.capability_data else {
            return Err(Error::Usage(
                "TPM answered TPM_CAP_TPM_PROPERTIES with another capability".into(),
            ));
        };
        let Some(last) = list.0.last().map(|p| p.property.0) else {
            break;
        };
        out.extend(list.0);
        // Stay within the group of `first` (fixed 0x100.., variable 0x200..).
        if !rsp.more_data || last >= (first.0 | 0xFF) {
            break;
        }
        next = last + 1;
    }
    Ok(out)
}

fn chars(v: u32) -> String {
    v.to_be_bytes()
        .iter()
        .filter(|b| b.is_ascii_graphic() || **b == b' ')
        .map(|b| char::from(*b))
        .collect::<String>()
        .trim()
        .to_string()
}

/// Gathers [`TpmInfo`].
///
/// # Errors
/// Transport or TPM errors.
pub fn gather(tpm: &mut Tpm) -> Result<TpmInfo> {
    let mut props = properties(tpm, TpmPt::FAMILY_INDICATOR)?;
    props.extend(properties(tpm, TpmPt::PERMANENT)?);
    let get = |pt: TpmPt| props.iter().find(|p| p.property == pt).map(|p| p.value);
    let val = |pt: TpmPt| get(pt).unwrap_or(0);

    let vendor = [
        TpmPt::VENDOR_STRING_1,
        TpmPt::VENDOR_STRING_2,
        TpmPt::VENDOR_STRING_3,
        TpmPt::VENDOR_STRING_4,
    ]
    .iter()
    .filter_map(|pt| get(*pt))
    .map(chars)
    .collect::<String>();
    let permanent = TpmaPermanent::from_bits_retain(val(TpmPt::PERMANENT));
    let startup = TpmaStartupClear::from_bits_retain(val(TpmPt::STARTUP_CLEAR));

    let algorithms = match capability(tpm, TpmCap::ALGS, 0, 256)? {
        TpmsCapabilityData::Algs(l) => l.0.into_iter().map(|a| (a.alg, a.alg_properties)).collect(),
        _ => Vec::new(),
    };
    let curves = match capability(tpm, TpmCap::ECC_CURVES, 0, 256)? {
        TpmsCapabilityData::EccCurves(l) => l.0,
        _ => Vec::new(),
    };
    let pcr_banks = match capability(tpm, TpmCap::PCRS, 0, 16)? {
        TpmsCapabilityData::Pcrs(l) => {
            l.0.iter()
                .map(|s| (s.hash, s.pcrs().len() as u32))
                .collect()
        }
        _ => Vec::new(),
    };

    let srk = match tpm.run(&ReadPublic {
        object_handle: TpmHandle::SRK,
    }) {
        Ok(rsp) => rsp.out_public.0.map(|p| PersistentSrk {
            kind: match &p.params {
                PublicParams::Ecc { parms, .. } => format!("ECC {}", parms.curve_id),
                PublicParams::Rsa { parms, .. } => format!("RSA {}", parms.key_bits),
                other => format!("{}", other.alg()),
            },
            name: rsp
                .name
                .as_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        }),
        Err(Error::Tpm { rc, .. }) if rc.base() == ResponseCode::HANDLE => None,
        Err(e) => return Err(e),
    };

    Ok(TpmInfo {
        manufacturer: chars(val(TpmPt::MANUFACTURER)),
        vendor,
        firmware: (
            val(TpmPt::FIRMWARE_VERSION_1),
            val(TpmPt::FIRMWARE_VERSION_2),
        ),
        family: chars(val(TpmPt::FAMILY_INDICATOR)),
        level: val(TpmPt::LEVEL),
        revision: val(TpmPt::REVISION),
        spec_date: (val(TpmPt::YEAR), val(TpmPt::DAY_OF_YEAR)),
        algorithms,
        curves,
        pcr_banks,
        da: DaState {
            failed_tries: val(TpmPt::LOCKOUT_COUNTER),
            max_tries: val(TpmPt::MAX_AUTH_FAIL),
            recovery_time: val(TpmPt::LOCKOUT_INTERVAL),
            lockout_recovery: val(TpmPt::LOCKOUT_RECOVERY),
            in_lockout: permanent.contains(TpmaPermanent::IN_LOCKOUT),
        },
        owner_auth_set: permanent.contains(TpmaPermanent::OWNER_AUTH_SET),
        storage_enabled: startup.contains(TpmaStartupClear::SH_ENABLE),
        srk,
        transient_slots: get(TpmPt::HR_TRANSIENT_AVAIL),
    })
}
