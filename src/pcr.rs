//! Platform Configuration Registers: PCR selections as users write them
//! (`sha256:7,16`, `sha256:7+sha1:0`), reading PCR values (Part 3 §22.4
//! TPM2_PCR_Read), the PolicyPCR digest of a set of values (Part 3 §23.7), and
//! extending a PCR (Part 3 §22.2 TPM2_PCR_Extend).

use tpm_commands::commands::{PcrExtend, PcrRead};
use tpm_commands::constants::{TpmAlgId, TpmHandle};
use tpm_commands::structures::{TpmlDigestValues, TpmlPcrSelection, TpmsPcrSelection, TpmtHa};

use crate::crypto::hash::HashAlg;
use crate::error::{Error, Result};
use crate::tpm::{Auth, Tpm};

/// The highest PCR index a TPM 2.0 PC Client platform has (PCRs 0–23).
pub const MAX_PCR: u8 = 23;

/// The name of a PCR bank as written on the command line (`sha1`, `sha256`, …).
pub fn bank_name(bank: HashAlg) -> &'static str {
    match bank {
        HashAlg::Sha1 => "sha1",
        HashAlg::Sha256 => "sha256",
        HashAlg::Sha384 => "sha384",
        HashAlg::Sha512 => "sha512",
    }
}

fn parse_bank(s: &str) -> Option<HashAlg> {
    match s.to_ascii_lowercase().as_str() {
        "sha1" => Some(HashAlg::Sha1),
        "sha256" => Some(HashAlg::Sha256),
        "sha384" => Some(HashAlg::Sha384),
        "sha512" => Some(HashAlg::Sha512),
        _ => None,
    }
}

/// A selection of PCRs in one or more banks (a TPML_PCR_SELECTION, Part 2
/// §10.9.7), in the order given; PCR indices within a bank ascending, which is
/// the order in which the TPM concatenates their values (Part 3 §23.7).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PcrSelection {
    banks: Vec<(HashAlg, Vec<u8>)>,
}

impl PcrSelection {
    /// No PCRs.
    pub fn empty() -> Self {
        PcrSelection::default()
    }

    /// PCRs `pcrs` of one bank.
    ///
    /// # Errors
    /// A PCR index above [`MAX_PCR`].
    pub fn bank(bank: HashAlg, pcrs: &[u8]) -> Result<Self> {
        let mut s = PcrSelection::empty();
        s.push(bank, pcrs)?;
        Ok(s)
    }

    fn push(&mut self, bank: HashAlg, pcrs: &[u8]) -> Result<()> {
        if let Some(p) = pcrs.iter().find(|p| **p > MAX_PCR) {
            return Err(Error::Usage(format!(
                "PCR {p} does not exist: PCRs are numbered 0 to {MAX_PCR}"
            )));
        }
        if self.banks.iter().any(|(b, _)| *b == bank) {
            return Err(Error::Usage(format!(
                "PCR bank {} is named twice; list its PCRs once, e.g. {}:7,16",
                bank_name(bank),
                bank_name(bank)
            )));
        }
        let mut list = pcrs.to_vec();
        list.sort_unstable();
        list.dedup();
        if !list.is_empty() {
            self.banks.push((bank, list));
        }
        Ok(())
    }

    /// Parses `sha256:7,16`, `sha1:0`, `sha256:7+sha1:0`; an empty string or a
    /// bank with no PCRs (`sha256:`) selects nothing.
    ///
    /// # Errors
    /// An unknown bank, a PCR that is not a number from 0 to 23, a bank twice.
    pub fn parse(s: &str) -> Result<Self> {
        let mut sel = PcrSelection::empty();
        let s = s.trim();
        if s.is_empty() {
            return Ok(sel);
        }
        for part in s.split('+') {
            let (bank, list) = part.split_once(':').ok_or_else(|| {
                Error::Usage(format!(
                    "PCR selection {part:?}: write BANK:LIST, e.g. sha256:7,16"
                ))
            })?;
            let bank = parse_bank(bank.trim()).ok_or_else(|| {
                Error::Usage(format!(
                    "unknown PCR bank {bank:?}: use sha1, sha256, sha384 or sha512"
                ))
            })?;
            let mut pcrs = Vec::new();
            for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let n: u8 = p.parse().map_err(|_| {
                    Error::Usage(format!(
                        "PCR {p:?} is not a number from 0 to {MAX_PCR} (in {part:?})"
                    ))
                })?;
                pcrs.push(n);
            }
            sel.push(bank, &pcrs)?;
        }
        Ok(sel)
    }

    /// True when no PCR is selected.
    pub fn is_empty(&self) -> bool {
        self.banks.is_empty()
    }

    /// The banks and their PCRs, in selection order.
    pub fn banks(&self) -> &[(HashAlg, Vec<u8>)] {
        &self.banks
    }

    /// Every (bank, PCR) in the order the TPM hashes their values.
    pub fn iter(&self) -> impl Iterator<Item = (HashAlg, u8)> + '_ {
        self.banks
            .iter()
            .flat_map(|(b, pcrs)| pcrs.iter().map(move |p| (*b, *p)))
    }

    /// As a TPML_PCR_SELECTION (3-byte bitmaps: PCRs 0–23).
    pub fn to_tpml(&self) -> TpmlPcrSelection {
        TpmlPcrSelection(
            self.banks
                .iter()
                .map(|(b, pcrs)| TpmsPcrSelection::new(TpmAlgId(b.alg_id()), pcrs))
                .collect(),
        )
    }
}

impl core::fmt::Display for PcrSelection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, (bank, pcrs)) in self.banks.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            write!(f, "{}:", bank_name(*bank))?;
            for (j, p) in pcrs.iter().enumerate() {
                if j > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{p}")?;
            }
        }
        Ok(())
    }
}

/// One PCR's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrValue {
    /// The bank.
    pub bank: HashAlg,
    /// The PCR index.
    pub index: u8,
    /// Its value (the bank's digest size).
    pub value: Vec<u8>,
}

impl PcrValue {
    /// `sha256:16`.
    pub fn label(&self) -> String {
        format!("{}:{}", bank_name(self.bank), self.index)
    }
}

/// Reads the selected PCRs (Part 3 §22.4 TPM2_PCR_Read; a TPM returns at most 8
/// values per call, so this asks again for the rest). Values come back in
/// [`PcrSelection::iter`] order.
///
/// # Errors
/// A bank the TPM has not allocated; transport or TPM errors; a malformed answer.
pub fn read(tpm: &mut Tpm, sel: &PcrSelection) -> Result<Vec<PcrValue>> {
    let wanted: Vec<(HashAlg, u8)> = sel.iter().collect();
    let mut got: Vec<Option<Vec<u8>>> = vec![None; wanted.len()];
    loop {
        let missing: Vec<(HashAlg, u8)> = wanted
            .iter()
            .zip(&got)
            .filter(|(_, v)| v.is_none())
            .map(|(w, _)| *w)
            .collect();
        if missing.is_empty() {
            break;
        }
        let mut rest = PcrSelection::empty();
        for (bank, _) in sel.banks() {
            let pcrs: Vec<u8> = missing
                .iter()
                .filter(|(b, _)| b == bank)
                .map(|(_, p)| *p)
                .collect();
            rest.push(*bank, &pcrs)?;
        }
        let rsp = tpm.run(&PcrRead {
            pcr_selection_in: rest.to_tpml(),
        })?;
        let mut values = rsp.pcr_values.0.iter();
        let mut progress = false;
        for s in &rsp.pcr_selection_out.0 {
            let Some(bank) = HashAlg::from_alg_id(s.hash.0) else {
                continue;
            };
            for p in s.pcrs() {
                let value = values.next().ok_or(Error::Integrity {
                    cc: tpm_commands::constants::TpmCc::PCR_READ,
                    what: "fewer PCR values than selected PCRs",
                })?;
                if value.len() != bank.digest_size() {
                    return Err(Error::Integrity {
                        cc: tpm_commands::constants::TpmCc::PCR_READ,
                        what: "a PCR value of the wrong size for its bank",
                    });
                }
                let Ok(p) = u8::try_from(p) else { continue };
                if let Some(i) = wanted.iter().position(|w| *w == (bank, p)) {
                    if let Some(slot) = got.get_mut(i) {
                        if slot.is_none() {
                            *slot = Some(value.as_bytes().to_vec());
                            progress = true;
                        }
                    }
                }
            }
        }
        if !progress {
            let (bank, p) = missing[0];
            return Err(Error::Usage(format!(
                "the TPM returns no value for PCR {}:{p}: its {} bank is not allocated (see the PCR banks in `tpmkey info`)",
                bank_name(bank),
                bank_name(bank)
            )));
        }
    }
    Ok(wanted
        .into_iter()
        .zip(got)
        .filter_map(|((bank, index), v)| v.map(|value| PcrValue { bank, index, value }))
        .collect())
}

/// The pcrDigest of TPM2_PolicyPCR (Part 3 §23.7): H_policy(value_1 || value_2 ||
/// …) over the values in selection order, hashed with the policy session's hash.
pub fn policy_pcr_digest(policy_hash: HashAlg, values: &[PcrValue]) -> Vec<u8> {
    let parts: Vec<&[u8]> = values.iter().map(|v| v.value.as_slice()).collect();
    policy_hash.hash(&parts)
}

/// The PCRs a caller may extend without `force`: 16 (debug, resettable) and 23
/// (application support). PCRs 0–15 record the boot chain; extending one by hand
/// breaks every secret sealed to it until the next boot.
pub fn extend_is_harmless(index: u8) -> bool {
    matches!(index, 16 | 23)
}

/// Extends PCR `index` of the SHA-256 bank with `digest` (Part 3 §22.2
/// TPM2_PCR_Extend: new = SHA-256(old || digest)), authorized with the PCR's
/// empty authValue. Returns the new value.
///
/// # Errors
/// A digest that is not 32 bytes, a PCR above 23; transport or TPM errors
/// (TPM_RC_LOCALITY for PCRs the current locality may not extend).
pub fn extend_sha256(tpm: &mut Tpm, index: u8, digest: &[u8]) -> Result<Vec<u8>> {
    if index > MAX_PCR {
        return Err(Error::Usage(format!(
            "PCR {index} does not exist: PCRs are numbered 0 to {MAX_PCR}"
        )));
    }
    if digest.len() != HashAlg::Sha256.digest_size() {
        return Err(Error::Usage(
            "a SHA-256 PCR extend needs a 32-byte digest".into(),
        ));
    }
    let handle = TpmHandle(u32::from(index));
    tpm.execute(
        &PcrExtend {
            pcr_handle: handle,
            digests: TpmlDigestValues(vec![TpmtHa {
                hash_alg: TpmAlgId::SHA256,
                digest: digest.to_vec(),
            }]),
        },
        &[&handle.0.to_be_bytes()],
        &mut [Auth::EmptyPassword],
    )?;
    let v = read(tpm, &PcrSelection::bank(HashAlg::Sha256, &[index])?)?;
    v.into_iter()
        .next()
        .map(|v| v.value)
        .ok_or(Error::Integrity {
            cc: tpm_commands::constants::TpmCc::PCR_READ,
            what: "no value for the extended PCR",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        let s = PcrSelection::parse("sha256:16,7+sha1:0").unwrap();
        assert_eq!(s.to_string(), "sha256:7,16+sha1:0");
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![
                (HashAlg::Sha256, 7),
                (HashAlg::Sha256, 16),
                (HashAlg::Sha1, 0)
            ]
        );
        assert_eq!(PcrSelection::parse(&s.to_string()).unwrap(), s);
        assert!(PcrSelection::parse("").unwrap().is_empty());
        assert!(PcrSelection::parse("sha256:").unwrap().is_empty());
    }

    #[test]
    fn parse_refuses_nonsense() {
        for bad in [
            "sha256",
            "md5:1",
            "sha256:24",
            "sha256:x",
            "sha256:1+sha256:2",
        ] {
            assert!(PcrSelection::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tpml_has_three_byte_bitmaps() {
        let t = PcrSelection::parse("sha256:7,16").unwrap().to_tpml();
        assert_eq!(t.0.len(), 1);
        assert_eq!(t.0[0].pcr_select, vec![0x80, 0x00, 0x01]);
    }
}
