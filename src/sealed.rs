//! Secrets sealed to the TPM under a PCR policy, optionally with a PIN: what an
//! initramfs needs to unlock a disk, and what `tpmkey seal` / `tpmkey unseal` do.
//!
//! - Sealing (Part 3 §12.1 TPM2_Create of a keyedHash object with `sensitive.data`
//!   = the secret, under the SRK) runs in a session salted to the SRK with
//!   `decrypt`: the secret and the PIN-derived authValue never cross the bus in
//!   clear. The object's authPolicy is computed in software: TPM2_PolicyPCR
//!   (Part 3 §23.7) over the current values of the selected PCRs, then
//!   TPM2_PolicyAuthValue (Part 3 §23.17) when a PIN is set; userWithAuth is
//!   clear, so nothing but that policy unseals it. Without a PIN the object is
//!   `noDA` (there is nothing to guess, and a dictionary-attack lockout caused by
//!   someone else must not stop a disk from unlocking).
//! - Unsealing (Part 3 §12.7 TPM2_Unseal) runs in a policy session salted to the
//!   SRK, with `encrypt`: the secret comes back AES-CFB encrypted under a session
//!   key only this host and the TPM know.
//! - A [`SealedSecret`] holds only public data and the TPM-wrapped private area:
//!   it is useless without this TPM in the sealed PCR state. It also records the
//!   PCR values at seal time (they are not secret), so that a policy failure can
//!   name the PCRs that changed.
//!
//! ```no_run
//! use tpmkey::keys::srk::Srk;
//! use tpmkey::keys::templates::SrkKind;
//! use tpmkey::pcr::PcrSelection;
//! use tpmkey::sealed::SealedSecret;
//! use tpmkey::Tpm;
//!
//! # fn main() -> tpmkey::Result<()> {
//! let mut tpm = Tpm::open(&"swtpm:host=127.0.0.1,port=2321".parse().map_err(
//!     |e: tpmkey::tcti::TctiError| tpmkey::Error::Usage(e.to_string()))?)?;
//! let srk = Srk::load(&mut tpm, SrkKind::Ecc)?;
//! let pcrs = PcrSelection::parse("sha256:7,16")?;
//! let sealed = SealedSecret::seal(&mut tpm, &srk, &pcrs, Some(b"1234"), b"disk key")?;
//! let file = sealed.to_json()?; // store it anywhere; it is not secret
//!
//! let sealed = SealedSecret::from_json(file.as_bytes())?;
//! let srk = sealed.load_srk(&mut tpm)?; // the SRK it was sealed under, checked
//! let secret = sealed.unseal(&mut tpm, &srk, Some(b"1234"))?;
//! assert_eq!(&secret[..], b"disk key");
//! # Ok(())
//! # }
//! ```

use serde::{Deserialize, Serialize};
use tpm_commands::attributes::{TpmaObject, TpmaSession};
use tpm_commands::buffers::{Tpm2bPrivate, MAX_SYM_DATA};
use tpm_commands::codec::{Marshal, Unmarshal};
use tpm_commands::constants::TpmAlgId;
use tpm_commands::rc::ResponseCode;
use tpm_commands::structures::{PublicParams, TpmtPublic};
use zeroize::Zeroizing;

use crate::crypto::hash::HashAlg;
use crate::error::{Error, Result};
use crate::keys::ops::{self, LoadedKey, WrappedKey};
use crate::keys::srk::Srk;
use crate::keys::templates::SrkKind;
use crate::pcr::{self, PcrSelection, PcrValue};
use crate::session::policy::PolicyDigest;
use crate::session::start::SessionParams;
use crate::session::SessionKind;
use crate::store::{to_hex, SrkRecord, WrappedRecord};
use crate::token::pin_auth;
use crate::tpm::{Auth, Tpm};

/// The largest secret a sealed object holds: MAX_SYM_DATA (Part 2 §10.4.3), 128
/// bytes on every TPM in use. Seal a random key and encrypt larger data with it.
pub const MAX_SECRET: usize = MAX_SYM_DATA;

/// The `format` field of a sealed file.
pub const FILE_FORMAT: &str = "tpmkey-sealed";

/// The sealed-file version this build writes and reads.
pub const FILE_VERSION: u32 = 1;

/// The policy hash: every policy session of tpmkey is SHA-256.
const POLICY_HASH: HashAlg = HashAlg::Sha256;

/// A secret sealed to this TPM under a PCR policy and/or a PIN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSecret {
    object: WrappedKey,
    pcrs: PcrSelection,
    pcr_values: Vec<PcrValue>,
    pin: bool,
    policy_digest: Vec<u8>,
    srk_kind: SrkKind,
    srk_name: Vec<u8>,
}

/// The authPolicy for `values` of `pcrs` (PolicyPCR when any PCR is selected),
/// then PolicyAuthValue when `pin` (Part 1 §19.7.3).
fn policy_for(pcrs: &PcrSelection, values: &[PcrValue], pin: bool) -> Result<PolicyDigest> {
    let mut p = PolicyDigest::new(POLICY_HASH);
    if !pcrs.is_empty() {
        p = p.pcr(
            &pcrs.to_tpml(),
            &pcr::policy_pcr_digest(POLICY_HASH, values),
        )?;
    }
    if pin {
        p = p.auth_value();
    }
    Ok(p)
}

/// Policy sessions salted to the SRK: the response-encryption key of Unseal
/// depends on a salt only the TPM can decrypt.
fn policy_session(
    tpm: &mut Tpm,
    srk: &Srk,
    kind: SessionKind,
) -> Result<crate::session::AuthSession> {
    let salt = srk.salt_key()?;
    let mut p = SessionParams::salted_hmac(&salt);
    p.kind = kind;
    tpm.start_session(&p)
}

/// TPM_RC_LOCKOUT as the lockout it is, with the TPM's counters.
fn lockout(tpm: &mut Tpm) -> Error {
    let da = crate::info::gather(tpm).map(|i| i.da).ok();
    Error::Lockout {
        failed: da.as_ref().map_or(0, |d| d.failed_tries),
        max: da.as_ref().map_or(0, |d| d.max_tries),
        interval: da.as_ref().map_or(0, |d| d.recovery_time),
    }
}

impl SealedSecret {
    /// Seals `secret` (1 to [`MAX_SECRET`] bytes) under `srk` with a policy of
    /// TPM2_PolicyPCR over the current values of `pcrs` (Part 3 §23.7) and, when
    /// `pin` is given, TPM2_PolicyAuthValue (Part 3 §23.17) with authValue =
    /// [`pin_auth`]`(pin)`. The object is made by TPM2_Create (Part 3 §12.1) in a
    /// session salted to the SRK with `decrypt`. Before sealing, a trial policy
    /// session checks that the TPM computes the same policy digest from the PCRs.
    ///
    /// # Errors
    /// An empty or too large secret; no PCR and no PIN (nothing would protect the
    /// secret); an empty PIN; a PCR bank the TPM lacks; transport or TPM errors.
    pub fn seal(
        tpm: &mut Tpm,
        srk: &Srk,
        pcrs: &PcrSelection,
        pin: Option<&[u8]>,
        secret: &[u8],
    ) -> Result<SealedSecret> {
        if secret.is_empty() {
            return Err(Error::Usage("the secret to seal is empty".into()));
        }
        if secret.len() > MAX_SECRET {
            return Err(Error::Usage(format!(
                "the secret is {} bytes; a TPM sealed object holds at most {MAX_SECRET} (MAX_SYM_DATA): seal a random key of at most {MAX_SECRET} bytes and encrypt the data with it",
                secret.len()
            )));
        }
        if pin.is_some_and(<[u8]>::is_empty) {
            return Err(Error::Usage("the PIN is empty".into()));
        }
        if pcrs.is_empty() && pin.is_none() {
            return Err(Error::Usage(
                "no PCRs and no PIN: nothing would protect the secret; give PCRs (e.g. sha256:7) or a PIN"
                    .into(),
            ));
        }
        let values = pcr::read(tpm, pcrs)?;
        let policy = policy_for(pcrs, &values, pin.is_some())?;
        if !pcrs.is_empty() {
            // The TPM's own digest from the PCRs as they are now: catches a PCR
            // extended between the read and the seal, and any disagreement on
            // how the selection is hashed.
            let mut t = policy_session(tpm, srk, SessionKind::Trial)?;
            let r = tpm
                .policy_pcr(&mut t, &pcrs.to_tpml())
                .and_then(|()| tpm.policy_get_digest(&t));
            let flushed = tpm.flush_session(&mut t);
            let tpm_digest = r?;
            flushed?;
            if tpm_digest != policy_for(pcrs, &values, false)?.digest() {
                return Err(Error::PolicyMismatch(format!(
                    "PCRs {pcrs} changed while sealing (or the TPM hashes them differently); try again"
                )));
            }
        }
        let salt = srk.salt_key()?;
        let mut s = tpm.start_session(&SessionParams::salted_hmac(&salt))?;
        let auth = pin.map(pin_auth).unwrap_or_default();
        let r = ops::seal(tpm, srk, &mut s, secret, &auth, Some(policy.digest()));
        let flushed = tpm.flush_session(&mut s);
        let object = r?;
        flushed?;
        Ok(SealedSecret {
            object,
            pcrs: pcrs.clone(),
            pcr_values: values,
            pin: pin.is_some(),
            policy_digest: policy.digest().to_vec(),
            srk_kind: srk.kind,
            srk_name: srk.name.clone(),
        })
    }

    /// Loads the SRK this secret was sealed under (persistent at 0x81000001, or
    /// derived from the standard template) and checks its Name against the one
    /// recorded at seal time, so that no key store is needed to unseal.
    ///
    /// # Errors
    /// Another TPM (or a cleared one): [`Error::WrongTpm`]; TPM errors.
    pub fn load_srk(&self, tpm: &mut Tpm) -> Result<Srk> {
        let srk = Srk::load(tpm, self.srk_kind)?;
        self.check_srk(&srk)?;
        Ok(srk)
    }

    fn check_srk(&self, srk: &Srk) -> Result<()> {
        if srk.name == self.srk_name {
            return Ok(());
        }
        Err(Error::WrongTpm(format!(
            "this secret was sealed on another TPM (or before the TPM was cleared): sealed under the storage root key with Name {}, this TPM's is {}",
            to_hex(&self.srk_name),
            to_hex(&srk.name)
        )))
    }

    /// Unseals the secret (Part 3 §12.7 TPM2_Unseal): loads the object under `srk`,
    /// satisfies its policy in a policy session salted to the SRK (TPM2_PolicyPCR
    /// with the TPM's current PCR values, then TPM2_PolicyAuthValue with `pin` when
    /// the secret has one) and unseals with `encrypt`, so the secret crosses the
    /// bus encrypted.
    ///
    /// # Errors
    /// [`Error::PolicyMismatch`] naming the PCRs that changed since sealing
    /// (TPM_RC_POLICY_FAIL); [`Error::Tpm`] with TPM_RC_AUTH_FAIL for a wrong PIN;
    /// [`Error::Lockout`]; a missing PIN; another SRK; transport or TPM errors.
    pub fn unseal(
        &self,
        tpm: &mut Tpm,
        srk: &Srk,
        pin: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.check_srk(srk)?;
        let auth = match (self.pin, pin) {
            (true, Some(p)) => pin_auth(p),
            (true, None) => {
                return Err(Error::Usage(
                    "this secret was sealed with a PIN: give the PIN".into(),
                ))
            }
            (false, _) => Zeroizing::new(Vec::new()),
        };
        // The SRK's authValue is empty: loading sends nothing secret.
        let obj = ops::load_key_with(tpm, srk, Auth::EmptyPassword, &self.object)?;
        let r = self.unseal_loaded(tpm, srk, &obj, &auth);
        // A failed flush leaves the handle tracked; the Tpm flushes it on drop.
        let _ = tpm.flush(obj.handle);
        r
    }

    fn unseal_loaded(
        &self,
        tpm: &mut Tpm,
        srk: &Srk,
        obj: &LoadedKey,
        auth: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let tpml = self.pcrs.to_tpml();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut s = policy_session(tpm, srk, SessionKind::Policy)?;
            let mut run = || -> Result<Zeroizing<Vec<u8>>> {
                if !self.pcrs.is_empty() {
                    tpm.policy_pcr(&mut s, &tpml)?;
                }
                if self.pin {
                    tpm.policy_auth_value(&mut s)?;
                }
                // continueSession clear: the TPM flushes the session after Unseal.
                s.set_attributes(TpmaSession::empty());
                ops::unseal(tpm, obj, &mut s, auth)
            };
            let r = run();
            if s.is_open() {
                let _ = tpm.flush_session(&mut s);
            }
            match r {
                // A PCR changed between PolicyPCR and Unseal: start over.
                Err(Error::Tpm { rc, .. })
                    if rc.base() == ResponseCode::PCR_CHANGED && attempt < 3 => {}
                Err(Error::Tpm { rc, .. }) if rc.base() == ResponseCode::POLICY_FAIL => {
                    return Err(self.explain_policy_failure(tpm))
                }
                Err(Error::Tpm { rc, .. }) if rc.base() == ResponseCode::LOCKOUT => {
                    return Err(lockout(tpm))
                }
                other => return other,
            }
        }
    }

    /// Reads the PCRs again and names the ones that differ from seal time.
    fn explain_policy_failure(&self, tpm: &mut Tpm) -> Error {
        let now = match pcr::read(tpm, &self.pcrs) {
            Ok(v) => v,
            Err(e) => {
                return Error::PolicyMismatch(format!(
                    "the PCR values differ from when the secret was sealed (PCRs {}) — the policy does not match (TPM_RC_POLICY_FAIL; reading the PCRs to say which changed failed: {e})",
                    self.pcrs
                ))
            }
        };
        let changed: Vec<String> = self
            .pcr_values
            .iter()
            .filter(|old| {
                !now.iter()
                    .any(|n| n.bank == old.bank && n.index == old.index && n.value == old.value)
            })
            .map(PcrValue::label)
            .collect();
        if changed.is_empty() {
            return Error::PolicyMismatch(format!(
                "the TPM refuses the policy (TPM_RC_POLICY_FAIL) although PCRs {} hold the values recorded at seal time: the sealed file may have been altered",
                self.pcrs
            ));
        }
        let what = if changed.len() == 1 { "PCR" } else { "PCRs" };
        Error::PolicyMismatch(format!(
            "the PCR values differ from when the secret was sealed ({what} {} changed since) — the policy does not match; unseal works only in the state it was sealed in (same firmware, boot chain and configuration), so seal the secret again once this state is trusted",
            changed.join(", ")
        ))
    }

    /// The PCRs the secret is sealed to (empty: PIN only).
    pub fn pcrs(&self) -> &PcrSelection {
        &self.pcrs
    }

    /// The PCR values at seal time, in selection order.
    pub fn pcr_values(&self) -> &[PcrValue] {
        &self.pcr_values
    }

    /// True when unsealing needs a PIN (PolicyAuthValue).
    pub fn needs_pin(&self) -> bool {
        self.pin
    }

    /// The object's authPolicy (SHA-256).
    pub fn policy_digest(&self) -> &[u8] {
        &self.policy_digest
    }

    /// The Name of the SRK the secret is sealed under.
    pub fn srk_name(&self) -> &[u8] {
        &self.srk_name
    }

    /// The TPM-wrapped sealed object (public and private areas).
    pub fn object(&self) -> &WrappedKey {
        &self.object
    }

    /// The sealed file (JSON, format [`FILE_FORMAT`] version [`FILE_VERSION`]):
    /// `{"format", "version", "srk": {"kind", "name"}, "pcrs": "sha256:7,16",
    /// "pcr_values": [{"pcr": "sha256:7", "value": hex}], "pin": bool,
    /// "policy_digest": hex, "object": {"private": hex TPM2B_PRIVATE contents,
    /// "public": hex TPMT_PUBLIC}}`. Nothing in it is secret.
    ///
    /// # Errors
    /// A public area that does not marshal.
    pub fn to_json(&self) -> Result<String> {
        let f = SealedFile {
            format: FILE_FORMAT.into(),
            version: FILE_VERSION,
            srk: SrkRecord {
                kind: match self.srk_kind {
                    SrkKind::Ecc => "ecc".into(),
                    SrkKind::Rsa => "rsa".into(),
                },
                name: to_hex(&self.srk_name),
                persistent: false,
                public: None,
            },
            pcrs: self.pcrs.to_string(),
            pcr_values: self
                .pcr_values
                .iter()
                .map(|v| PcrValueRecord {
                    pcr: v.label(),
                    value: to_hex(&v.value),
                })
                .collect(),
            pin: self.pin,
            policy_digest: to_hex(&self.policy_digest),
            object: WrappedRecord {
                private: to_hex(self.object.private.as_bytes()),
                public: to_hex(&self.object.public.to_bytes()?),
            },
        };
        serde_json::to_string_pretty(&f)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(|e| Error::BadSealedFile(e.to_string()))
    }

    /// Reads a sealed file written by [`SealedSecret::to_json`], checking that it
    /// agrees with itself: the recorded PCR values and PIN flag must give the
    /// object's authPolicy, and the object must be a policy-only sealed object.
    ///
    /// # Errors
    /// [`Error::BadSealedFile`] saying what is wrong (including a file from a
    /// newer tpmkey).
    pub fn from_json(bytes: &[u8]) -> Result<SealedSecret> {
        let bad = |what: String| Error::BadSealedFile(what);
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            bad(format!(
                "not JSON ({e}); is this a file from `tpmkey seal`?"
            ))
        })?;
        if v.get("format").and_then(|f| f.as_str()) != Some(FILE_FORMAT) {
            return Err(bad(format!(
                "no \"format\": \"{FILE_FORMAT}\"; is this a file from `tpmkey seal`?"
            )));
        }
        match v.get("version").and_then(|x| x.as_u64()) {
            Some(n) if n == u64::from(FILE_VERSION) => {}
            Some(n) if n > u64::from(FILE_VERSION) => {
                return Err(bad(format!(
                    "written by a newer tpmkey (sealed format {n}, this one reads {FILE_VERSION}); upgrade tpmkey"
                )))
            }
            _ => return Err(bad("missing or unknown \"version\"".into())),
        }
        let f: SealedFile = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
        let srk_kind = match f.srk.kind.as_str() {
            "ecc" => SrkKind::Ecc,
            "rsa" => SrkKind::Rsa,
            k => return Err(bad(format!("unknown SRK kind {k:?}"))),
        };
        let srk_name = unhex("srk.name", &f.srk.name)?;
        let pcrs = PcrSelection::parse(&f.pcrs).map_err(|e| bad(format!("pcrs: {e}")))?;
        let wanted: Vec<(HashAlg, u8)> = pcrs.iter().collect();
        if f.pcr_values.len() != wanted.len() {
            return Err(bad(format!(
                "{} PCR values recorded for the {} PCRs of {pcrs}",
                f.pcr_values.len(),
                wanted.len()
            )));
        }
        let mut pcr_values = Vec::with_capacity(wanted.len());
        for ((bank, index), rec) in wanted.into_iter().zip(&f.pcr_values) {
            let pv = PcrValue {
                bank,
                index,
                value: unhex("pcr_values", &rec.value)?,
            };
            if rec.pcr != pv.label() || pv.value.len() != bank.digest_size() {
                return Err(bad(format!(
                    "the recorded value of {} does not fit the selection {pcrs}",
                    rec.pcr
                )));
            }
            pcr_values.push(pv);
        }
        let policy_digest = unhex("policy_digest", &f.policy_digest)?;
        let private = Tpm2bPrivate::new(unhex("object.private", &f.object.private)?)
            .map_err(|e| bad(format!("object.private: {e}")))?;
        let public = TpmtPublic::from_bytes(&unhex("object.public", &f.object.public)?)
            .map_err(|e| bad(format!("object.public: {e}")))?;
        if !matches!(public.params, PublicParams::KeyedHash { .. })
            || public.name_alg != TpmAlgId::SHA256
            || public
                .object_attributes
                .contains(TpmaObject::USER_WITH_AUTH)
        {
            return Err(bad(
                "the object is not a policy-protected sealed object".into()
            ));
        }
        if pcrs.is_empty() && !f.pin {
            return Err(bad("neither PCRs nor a PIN protect this object".into()));
        }
        let expected = policy_for(&pcrs, &pcr_values, f.pin)?;
        if expected.digest() != policy_digest.as_slice()
            || public.auth_policy.as_bytes() != policy_digest.as_slice()
        {
            return Err(bad(
                "the recorded PCRs, PCR values and PIN flag do not give the object's policy: the file was altered".into(),
            ));
        }
        Ok(SealedSecret {
            object: WrappedKey { private, public },
            pcrs,
            pcr_values,
            pin: f.pin,
            policy_digest,
            srk_kind,
            srk_name,
        })
    }
}

fn unhex(what: &str, s: &str) -> Result<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return Err(Error::BadSealedFile(format!("{what}: odd-length hex")));
    }
    b.chunks(2)
        .map(|c| {
            std::str::from_utf8(c)
                .ok()
                .and_then(|t| u8::from_str_radix(t, 16).ok())
                .ok_or_else(|| Error::BadSealedFile(format!("{what}: not hex")))
        })
        .collect()
}

#[derive(Serialize, Deserialize)]
struct PcrValueRecord {
    pcr: String,
    value: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedFile {
    format: String,
    version: u32,
    srk: SrkRecord,
    pcrs: String,
    pcr_values: Vec<PcrValueRecord>,
    pin: bool,
    policy_digest: String,
    object: WrappedRecord,
}
