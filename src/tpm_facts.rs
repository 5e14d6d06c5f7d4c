//! Facts about the TPM and the PINs kept in the store, so that listing calls
//! (PKCS#11 C_GetMechanismInfo, C_GetTokenInfo) answer without a TPM command:
//! the key algorithms the TPM accepts (Part 3 §30.3 TPM2_TestParms, asked at
//! `tpmkey init`), its dictionary-attack counters (Part 1 §19.8.6, read with
//! TPM2_GetCapability only when a PIN was just refused), and per token how many
//! wrong PINs were given since the last right one.
//!
//! From these come the PKCS#11 PIN flags (PKCS#11 2.40 Base §3.2 CK_TOKEN_INFO):
//! COUNT_LOW after a wrong PIN until the next right one, FINAL_TRY when one more
//! failure locks the TPM out, LOCKED while it is locked out. The TPM forgives
//! one failure per `interval` seconds, so the stored counter is aged by the
//! time since it was read.

use tpm_commands::commands::GetCapability;
use tpm_commands::constants::{TpmCap, TpmPt};
use tpm_commands::structures::TpmsCapabilityData;

use crate::app::{algorithm_name, parse_algorithm, App};
use crate::error::{Error, Result};
use crate::keys::ops::supports;
use crate::keys::templates::KeyAlgorithm;
use crate::store::LockoutRecord;
use crate::tpm::Tpm;

/// Every key algorithm tpmkey makes, smallest first.
pub const ALL_ALGORITHMS: [KeyAlgorithm; 5] = [
    KeyAlgorithm::Ecc256,
    KeyAlgorithm::Ecc384,
    KeyAlgorithm::Rsa2048,
    KeyAlgorithm::Rsa3072,
    KeyAlgorithm::Rsa4096,
];

/// The names of the key algorithms the TPM accepts (one TPM2_TestParms each).
///
/// # Errors
/// Transport errors, and TPM errors other than "unsupported".
pub fn algorithm_names(tpm: &mut Tpm) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for alg in ALL_ALGORITHMS {
        if supports(tpm, alg)? {
            names.push(algorithm_name(alg).to_string());
        }
    }
    Ok(names)
}

/// Reads the dictionary-attack counters (one TPM2_GetCapability of
/// TPM_PT_LOCKOUT_COUNTER, TPM_PT_MAX_AUTH_FAIL, TPM_PT_LOCKOUT_INTERVAL).
///
/// # Errors
/// Transport or TPM errors; an answer without those properties.
pub fn read_lockout(tpm: &mut Tpm) -> Result<LockoutRecord> {
    let rsp = tpm.run(&GetCapability {
        capability: TpmCap::TPM_PROPERTIES,
        property: TpmPt::LOCKOUT_COUNTER.0,
        property_count: 3,
    })?;
    let TpmsCapabilityData::TpmProperties(list) = rsp.capability_data else {
        return Err(Error::Usage(
            "TPM answered TPM_CAP_TPM_PROPERTIES with another capability".into(),
        ));
    };
    let get = |pt: TpmPt| {
        list.0
            .iter()
            .find(|p| p.property == pt)
            .map(|p| p.value)
            .ok_or_else(|| Error::Usage(format!("the TPM did not report {pt}")))
    };
    Ok(LockoutRecord {
        counter: get(TpmPt::LOCKOUT_COUNTER)?,
        max_tries: get(TpmPt::MAX_AUTH_FAIL)?,
        interval: get(TpmPt::LOCKOUT_INTERVAL)?,
        read_at: now(),
    })
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A PIN's state as PKCS#11 flags it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PinStatus {
    /// A wrong PIN was given since the last right one (CKF_*_PIN_COUNT_LOW).
    pub count_low: bool,
    /// One more wrong PIN locks the TPM out (CKF_*_PIN_FINAL_TRY).
    pub final_try: bool,
    /// The TPM is locked out: no PIN is checked now (CKF_*_PIN_LOCKED).
    pub locked: bool,
}

/// The status of a PIN with `failures` wrong tries since the last right one,
/// given the TPM's counters as last read, at time `now` (seconds).
pub fn pin_status(failures: u32, lockout: Option<&LockoutRecord>, now: u64) -> PinStatus {
    let mut s = PinStatus {
        count_low: failures > 0,
        ..PinStatus::default()
    };
    let Some(l) = lockout.filter(|l| l.max_tries > 0) else {
        return s;
    };
    let forgiven = match l.interval {
        0 => 0,
        i => now.saturating_sub(l.read_at) / u64::from(i),
    };
    let counter = u64::from(l.counter).saturating_sub(forgiven);
    let max = u64::from(l.max_tries);
    s.locked = counter >= max;
    s.final_try = !s.locked && counter + 1 >= max;
    s
}

impl App {
    /// The key algorithms recorded by `init`, None for a store from before.
    pub fn known_algorithms(&self) -> Option<Vec<KeyAlgorithm>> {
        let names = self.store.read_record().ok()?.algorithms?;
        Some(
            names
                .iter()
                .filter_map(|n| parse_algorithm(n).ok())
                .collect(),
        )
    }

    /// The key algorithms this TPM makes: from the store, or asked now and
    /// recorded when the store has none yet.
    ///
    /// # Errors
    /// Transport or TPM errors; store errors.
    pub fn algorithms(&self, tpm: &mut Tpm) -> Result<Vec<KeyAlgorithm>> {
        if let Some(known) = self.known_algorithms() {
            return Ok(known);
        }
        let names = algorithm_names(tpm)?;
        let _lock = self.store.lock()?;
        let mut rec = self.store.read_record()?;
        rec.algorithms = Some(names.clone());
        self.store.write_record(&rec)?;
        Ok(names
            .iter()
            .filter_map(|n| parse_algorithm(n).ok())
            .collect())
    }

    /// Records the outcome of a PIN check of token `label` (`so`: the SO PIN):
    /// a wrong PIN counts, a right one clears the count. Writes only when the
    /// count changes, so a right PIN after right PINs costs nothing.
    ///
    /// # Errors
    /// Store errors.
    pub fn note_pin(&self, label: &str, so: bool, right: bool) -> Result<()> {
        let count = |t: &crate::store::TokenRecord| {
            if so {
                t.so_pin_failures
            } else {
                t.user_pin_failures
            }
        };
        if right && count(&self.store.read_token(label)?) == 0 {
            return Ok(());
        }
        let _lock = self.store.lock()?;
        let mut t = self.store.read_token(label)?;
        let n = if right {
            0
        } else {
            count(&t).saturating_add(1)
        };
        if so {
            t.so_pin_failures = n;
        } else {
            t.user_pin_failures = n;
        }
        self.store.write_token(&t)?;
        Ok(())
    }

    /// Records the TPM's dictionary-attack counters.
    ///
    /// # Errors
    /// Store errors.
    pub fn note_lockout(&self, lockout: LockoutRecord) -> Result<()> {
        let _lock = self.store.lock()?;
        let mut rec = self.store.read_record()?;
        rec.lockout = Some(lockout);
        self.store.write_record(&rec)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lockout(counter: u32, max_tries: u32, interval: u32) -> LockoutRecord {
        LockoutRecord {
            counter,
            max_tries,
            interval,
            read_at: 1000,
        }
    }

    #[test]
    fn flags_follow_failures_and_the_tpm_counter() {
        assert_eq!(pin_status(0, None, 1000), PinStatus::default());
        assert!(pin_status(1, None, 1000).count_low);
        // swtpm's defaults: 3 tries, one forgiven every 1000 s.
        let s = pin_status(1, Some(&lockout(1, 3, 1000)), 1000);
        assert!(s.count_low && !s.final_try && !s.locked);
        let s = pin_status(2, Some(&lockout(2, 3, 1000)), 1000);
        assert!(s.final_try && !s.locked);
        let s = pin_status(3, Some(&lockout(3, 3, 1000)), 1999);
        assert!(s.locked && !s.final_try);
        // A thousand seconds later one failure is forgiven: final try again.
        let s = pin_status(3, Some(&lockout(3, 3, 1000)), 2000);
        assert!(s.final_try && !s.locked);
        // No recovery interval: locked until lockoutAuth resets it.
        assert!(pin_status(0, Some(&lockout(5, 5, 0)), 99_999).locked);
        // A TPM without DA limits (max 0) never locks.
        assert_eq!(
            pin_status(0, Some(&lockout(9, 0, 0)), 1000),
            PinStatus::default()
        );
        // Right PIN after a lockout ended: no COUNT_LOW, still the counter's word.
        let s = pin_status(0, Some(&lockout(2, 3, 10)), 1005);
        assert!(!s.count_low && s.final_try);
    }
}
