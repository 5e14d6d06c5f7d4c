//! C_GenerateKeyPair, C_InitPIN, C_SetPIN and C_GenerateRandom.

use zeroize::Zeroizing;

use std::sync::Arc;

use tpm_commands::codec::Marshal;

use super::{rv_of, KeyHalf, KeyPairRequest, Kind, Login, Module, Object, Rv};
use crate::app::Unlock;
use crate::error::Error;
use crate::keys::ops;
use crate::keys::templates::{key_template, KeyAlgorithm, KeyUsage};
use crate::pkcs11::mechanisms::{family, Family};
use crate::pkcs11::objects::{Class, KeyView, P256_PARAMS, P384_PARAMS};
use crate::pkcs11::template::Template;
use crate::store::{to_hex, KeyRecord, WrappedRecord, FORMAT_VERSION};
use cryptoki_sys::*;

impl Module {
    // ---- key generation, PINs, random ----

    /// C_GenerateKeyPair: a key made in the TPM, recorded in the token
    /// (CKA_TOKEN true) or kept in memory as session objects of `h` (CKA_TOKEN
    /// false or absent, the spec's default). Returns (public, private) object
    /// handles.
    ///
    /// # Errors
    /// CKR_SESSION_READ_ONLY (token objects from a read-only session),
    /// CKR_USER_NOT_LOGGED_IN (a private key object without login),
    /// CKR_TEMPLATE_INCONSISTENT (a label or id in use; CKA_PRIVATE false on a
    /// token key of a PIN token), CKR_KEY_SIZE_RANGE / CKR_CURVE_NOT_SUPPORTED
    /// (this TPM cannot make the key), TPM errors.
    pub fn generate_key_pair(
        &mut self,
        h: CK_SESSION_HANDLE,
        req: KeyPairRequest,
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE), Rv> {
        let s = self.session(h)?;
        let (slot, rw) = (s.slot, s.rw);
        let pin_token = !self.slots[slot].token.no_pin;
        if req.token && !rw {
            return Err(CKR_SESSION_READ_ONLY);
        }
        if req.token && pin_token && !req.private {
            // Token keys of a PIN token are all private (the store has no
            // per-key flag, and their authValue comes from the login).
            return Err(CKR_TEMPLATE_INCONSISTENT);
        }
        if (req.token || req.private) && !self.user_logged_in(slot) {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        // What this TPM makes, from the store (asked once, and recorded, for a
        // store from before the record: key generation talks to the TPM anyway).
        let known = match self.app()?.known_algorithms() {
            Some(k) => k,
            None => self.with_connected(|app, c| app.algorithms(&mut c.tpm))?,
        };
        if !known.contains(&req.alg) {
            return Err(unsupported(req.alg));
        }
        if !req.token {
            return self.generate_session_key_pair(h, slot, req);
        }
        let token = self.slots[slot].label.clone();
        let mut id = req.id.clone();
        if id.is_none() {
            let mut r = [0u8; 8];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut r);
            id = Some(r.to_vec());
        }
        let id = id.unwrap_or_default();
        let label = req
            .label
            .clone()
            .unwrap_or_else(|| format!("key-{}", to_hex(&id)));
        {
            let app = self.app()?;
            let (keys, _) = app
                .store
                .read_keys(&token)
                .map_err(|e| rv_of(&Error::Store(e)))?;
            if keys.iter().any(|k| k.label == label || k.id == to_hex(&id)) {
                return Err(CKR_TEMPLATE_INCONSISTENT);
            }
        }
        let secret = match &self.slots[slot].login {
            Some(Login::User(Some(s))) => Some(s.clone()),
            _ => None,
        };
        let (alg, usage) = (req.alg, req.usage);
        let rec = self.with_connected(|app, c| {
            let unlock = match &secret {
                Some(s) => Unlock::Secret(s),
                None => Unlock::Pin(b""),
            };
            app.add_key_on(
                c,
                &token,
                &label,
                Some(&id),
                alg,
                unlock,
                false,
                |c, auth| {
                    let public = key_template(alg, usage, auth.is_empty());
                    ops::create_key_with(&mut c.tpm, &c.srk, &mut c.session, public, auth)
                },
            )
        })?;
        self.refresh_objects(slot);
        let mut public = 0;
        let mut private = 0;
        for (i, o) in self.objects.iter().enumerate() {
            if let Some(k) = o
                .as_ref()
                .and_then(|o| o.token_key(slot))
                .filter(|k| k.record.id == rec.id)
            {
                match k.class {
                    Class::Public => public = (i + 1) as CK_OBJECT_HANDLE,
                    Class::Private => private = (i + 1) as CK_OBJECT_HANDLE,
                }
            }
        }
        if public == 0 || private == 0 {
            return Err(CKR_GENERAL_ERROR);
        }
        Ok((public, private))
    }

    /// A key pair as session objects of `h`: made in the TPM with a random
    /// authValue (never written anywhere; noDA, since it cannot be guessed) and
    /// kept in memory only, gone at C_CloseSession.
    fn generate_session_key_pair(
        &mut self,
        h: CK_SESSION_HANDLE,
        slot: usize,
        req: KeyPairRequest,
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE), Rv> {
        let id = req.id.clone().unwrap_or_else(|| {
            let mut r = [0u8; 8];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut r);
            r.to_vec()
        });
        let label = req
            .label
            .clone()
            .unwrap_or_else(|| format!("key-{}", to_hex(&id)));
        let mut auth = Zeroizing::new(vec![0u8; 32]);
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut auth);
        let (alg, usage) = (req.alg, req.usage);
        let wrapped = self.with_connected(|_, c| {
            let public = key_template(alg, usage, true);
            ops::create_key_with(&mut c.tpm, &c.srk, &mut c.session, public, &auth)
        })?;
        let record = KeyRecord {
            version: FORMAT_VERSION,
            label: label.clone(),
            id: to_hex(&id),
            algorithm: crate::app::algorithm_name(alg).into(),
            blob: WrappedRecord {
                private: to_hex(wrapped.private.as_bytes()),
                public: to_hex(&wrapped.public.to_bytes().map_err(|_| CKR_GENERAL_ERROR)?),
            },
            imported: false,
            created: 0,
            empty_auth: false,
            cka_id: None,
        };
        let view = Arc::new(KeyView {
            label,
            id,
            alg,
            public: wrapped.public.clone(),
            imported: false,
            private_needs_login: req.private && !self.slots[slot].token.no_pin,
        });
        let (record, wrapped) = (Arc::new(record), Arc::new(wrapped));
        let auth = Arc::new(auth);
        let mut handles = Vec::new();
        for class in [Class::Public, Class::Private] {
            self.objects.push(Some(Object {
                slot,
                session: Some(h),
                kind: Kind::Key(KeyHalf {
                    class,
                    view: view.clone(),
                    record: record.clone(),
                    wrapped: wrapped.clone(),
                    auth: Some(auth.clone()),
                }),
            }));
            handles.push(self.objects.len() as CK_OBJECT_HANDLE);
        }
        Ok((handles[0], handles[1]))
    }

    /// C_InitPIN: the SO (logged in) sets a new user PIN: the token secret is
    /// sealed again under it.
    ///
    /// # Errors
    /// CKR_USER_NOT_LOGGED_IN unless the SO is logged in; CKR_SESSION_READ_ONLY.
    pub fn init_pin(&mut self, h: CK_SESSION_HANDLE, pin: &[u8]) -> Result<(), Rv> {
        let s = self.session(h)?;
        let (slot, rw) = (s.slot, s.rw);
        if !rw {
            return Err(CKR_SESSION_READ_ONLY);
        }
        let Some(Login::So(secret)) = &self.slots[slot].login else {
            return Err(CKR_USER_NOT_LOGGED_IN);
        };
        if pin.is_empty() {
            return Err(CKR_PIN_LEN_RANGE);
        }
        let secret = secret.clone();
        let label = self.slots[slot].label.clone();
        self.with_connected(|app, c| {
            let seal = ops::seal(
                &mut c.tpm,
                &c.srk,
                &mut c.session,
                &secret,
                &crate::token::pin_auth(pin),
                None,
            )?;
            app.set_user_seal(c, &label, &seal)
        })?;
        self.refresh_slots();
        Ok(())
    }

    /// C_SetPIN: the SO PIN when the SO is logged in, else the user PIN (the old
    /// PIN proven to the TPM by TPM2_ObjectChangeAuth).
    ///
    /// # Errors
    /// CKR_PIN_INCORRECT, CKR_SESSION_READ_ONLY, CKR_PIN_LEN_RANGE.
    pub fn set_pin(&mut self, h: CK_SESSION_HANDLE, old: &[u8], new: &[u8]) -> Result<(), Rv> {
        let s = self.session(h)?;
        let (slot, rw) = (s.slot, s.rw);
        if !rw {
            return Err(CKR_SESSION_READ_ONLY);
        }
        if self.slots[slot].token.no_pin {
            return Err(CKR_FUNCTION_NOT_SUPPORTED);
        }
        if new.is_empty() {
            return Err(CKR_PIN_LEN_RANGE);
        }
        let so = matches!(self.slots[slot].login, Some(Login::So(_)));
        let label = self.slots[slot].label.clone();
        // A refused old PIN is counted for the PIN flags by `change_pin_on`.
        self.with_connected(|app, c| app.change_pin_on(c, &label, old, new, so))?;
        self.refresh_slots();
        Ok(())
    }

    /// C_SeedRandom: the caller's bytes mixed into the TPM's RNG state
    /// (TPM2_StirRandom, sent encrypted). Seeds longer than one TPM2_StirRandom
    /// takes (128 bytes) are condensed with SHA-512 first.
    ///
    /// # Errors
    /// TPM errors.
    pub fn seed_random(&mut self, h: CK_SESSION_HANDLE, seed: &[u8]) -> Result<(), Rv> {
        self.session(h)?;
        let seed = if seed.len() > crate::random::MAX_STIR {
            Zeroizing::new(crate::crypto::hash::HashAlg::Sha512.hash(&[seed]))
        } else {
            Zeroizing::new(seed.to_vec())
        };
        self.with_connected(|_, c| crate::random::stir_random(&mut c.tpm, &mut c.session, &seed))
    }

    /// C_GenerateRandom: TPM random bytes, encrypted on the bus.
    ///
    /// # Errors
    /// TPM errors.
    pub fn random(&mut self, h: CK_SESSION_HANDLE, n: usize) -> Result<Zeroizing<Vec<u8>>, Rv> {
        self.session(h)?;
        self.with_connected(|_, c| {
            crate::random::get_random_encrypted(&mut c.tpm, &mut c.session, n)
        })
    }

    /// Parses C_GenerateKeyPair's templates.
    ///
    /// # Errors
    /// CKR_MECHANISM_INVALID, CKR_TEMPLATE_INCOMPLETE, CKR_TEMPLATE_INCONSISTENT,
    /// CKR_KEY_SIZE_RANGE, CKR_CURVE_NOT_SUPPORTED, CKR_ATTRIBUTE_VALUE_INVALID.
    pub fn key_pair_request(
        mech: CK_MECHANISM_TYPE,
        public: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
        private: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<KeyPairRequest, Rv> {
        let (public, private) = (Template::new(public)?, Template::new(private)?);
        let get = |t: CK_ATTRIBUTE_TYPE| public.bytes(t).or_else(|| private.bytes(t));
        // The private key never leaves the TPM; the two halves live alike.
        for t in [public, private] {
            t.require_bool(CKA_EXTRACTABLE, false)?;
            t.require_bool(CKA_SENSITIVE, true)?;
            for never in [CKA_WRAP, CKA_UNWRAP, CKA_SIGN_RECOVER, CKA_VERIFY_RECOVER] {
                t.require_bool(never, false)?;
            }
        }
        public.require_bool(CKA_PRIVATE, false)?;
        // Both halves live alike: in the store, or in the session.
        let token = match (private.bool(CKA_TOKEN)?, public.bool(CKA_TOKEN)?) {
            (Some(a), Some(b)) if a != b => return Err(CKR_TEMPLATE_INCONSISTENT),
            (a, b) => a.or(b),
        };
        let alg = match mech {
            CKM_EC_KEY_PAIR_GEN => match get(CKA_EC_PARAMS) {
                Some(p) if p == P256_PARAMS => KeyAlgorithm::Ecc256,
                Some(p) if p == P384_PARAMS => KeyAlgorithm::Ecc384,
                Some(_) => return Err(CKR_CURVE_NOT_SUPPORTED),
                None => return Err(CKR_TEMPLATE_INCOMPLETE),
            },
            CKM_RSA_PKCS_KEY_PAIR_GEN => {
                if let Some(e) = get(CKA_PUBLIC_EXPONENT) {
                    let e: Vec<u8> = e.iter().copied().skip_while(|b| *b == 0).collect();
                    if e != [1, 0, 1] {
                        return Err(CKR_TEMPLATE_INCONSISTENT);
                    }
                }
                let bits = public.ulong(CKA_MODULUS_BITS)?;
                match bits.or(private.ulong(CKA_MODULUS_BITS)?) {
                    Some(2048) => KeyAlgorithm::Rsa2048,
                    Some(3072) => KeyAlgorithm::Rsa3072,
                    Some(4096) => KeyAlgorithm::Rsa4096,
                    Some(_) => return Err(CKR_KEY_SIZE_RANGE),
                    None => return Err(CKR_TEMPLATE_INCOMPLETE),
                }
            }
            _ => return Err(CKR_MECHANISM_INVALID),
        };
        let label = match public.text(CKA_LABEL)? {
            Some(l) => Some(l),
            None => private.text(CKA_LABEL)?,
        };
        let usage = usage_of(public, private, family(alg))?;
        let id = get(CKA_ID).map(<[u8]>::to_vec);
        if id.as_ref().is_some_and(|i| i.is_empty() || i.len() > 32)
            || label
                .as_ref()
                .is_some_and(|l| crate::app::check_key_label(l).is_err())
        {
            return Err(CKR_ATTRIBUTE_VALUE_INVALID);
        }
        Ok(KeyPairRequest {
            alg,
            label,
            id,
            usage,
            token: token.unwrap_or(false),
            private: private.bool(CKA_PRIVATE)?.unwrap_or(true),
        })
    }
}

/// The return value for a key this TPM cannot make: its size (RSA) or curve (EC).
fn unsupported(alg: KeyAlgorithm) -> Rv {
    match family(alg) {
        Family::Rsa => CKR_KEY_SIZE_RANGE,
        Family::Ec => CKR_CURVE_NOT_SUPPORTED,
    }
}

/// What the key pair may do, from CKA_SIGN/CKA_VERIFY, CKA_DECRYPT/CKA_ENCRYPT
/// (RSA) and CKA_DERIVE (EC) of the two templates; signing when none is given.
///
/// # Errors
/// CKR_TEMPLATE_INCONSISTENT when the halves disagree (CKA_SIGN true with
/// CKA_VERIFY false), when a use is asked that the key type lacks (CKA_DECRYPT
/// on EC, CKA_DERIVE on RSA), or when every use is turned off.
fn usage_of(public: Template<'_>, private: Template<'_>, fam: Family) -> Result<KeyUsage, Rv> {
    let pair = |pri: CK_ATTRIBUTE_TYPE, publ: CK_ATTRIBUTE_TYPE| -> Result<Option<bool>, Rv> {
        match (private.bool(pri)?, public.bool(publ)?) {
            (Some(a), Some(b)) if a != b => Err(CKR_TEMPLATE_INCONSISTENT),
            (a, b) => Ok(a.or(b)),
        }
    };
    let sign = pair(CKA_SIGN, CKA_VERIFY)?;
    let decrypt = pair(CKA_DECRYPT, CKA_ENCRYPT)?;
    let derive = pair(CKA_DERIVE, CKA_DERIVE)?;
    let agree = match fam {
        Family::Rsa if derive == Some(true) => return Err(CKR_TEMPLATE_INCONSISTENT),
        Family::Ec if decrypt == Some(true) => return Err(CKR_TEMPLATE_INCONSISTENT),
        Family::Rsa => decrypt,
        Family::Ec => derive,
    };
    let usage = match (sign, agree) {
        (None, None) => KeyUsage::SIGN,
        (s, a) => KeyUsage {
            sign: s.unwrap_or(false),
            decrypt: a.unwrap_or(false),
        },
    };
    if !usage.sign && !usage.decrypt {
        return Err(CKR_TEMPLATE_INCONSISTENT);
    }
    Ok(usage)
}
