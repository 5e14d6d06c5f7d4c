//! C_GenerateKeyPair, C_InitPIN, C_SetPIN and C_GenerateRandom.

use zeroize::Zeroizing;

use super::{rv_of, KeyPairRequest, Login, Module, Rv};
use crate::app::Unlock;
use crate::error::Error;
use crate::keys::ops;
use crate::keys::templates::KeyAlgorithm;
use crate::pkcs11::objects::{Class, P256_PARAMS, P384_PARAMS};
use crate::pkcs11::template::Template;
use crate::store::to_hex;
use cryptoki_sys::*;

impl Module {
    // ---- key generation, PINs, random ----

    /// C_GenerateKeyPair: a key made in the TPM, recorded in the token. Returns
    /// (public, private) object handles.
    ///
    /// # Errors
    /// CKR_SESSION_READ_ONLY, CKR_USER_NOT_LOGGED_IN, CKR_TEMPLATE_INCONSISTENT
    /// (a label or id in use), TPM errors.
    pub fn generate_key_pair(
        &mut self,
        h: CK_SESSION_HANDLE,
        req: KeyPairRequest,
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE), Rv> {
        let s = self.session(h)?;
        let (slot, rw) = (s.slot, s.rw);
        if !rw {
            return Err(CKR_SESSION_READ_ONLY);
        }
        if !self.user_logged_in(slot) {
            return Err(CKR_USER_NOT_LOGGED_IN);
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
        let alg = req.alg;
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
                |c, auth| ops::create_key(&mut c.tpm, &c.srk, &mut c.session, alg, auth),
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
        self.with_connected(|app, c| app.change_pin_on(c, &label, old, new, so))?;
        self.refresh_slots();
        Ok(())
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
        // Token objects only; the private key never leaves the TPM.
        for t in [public, private] {
            t.require_bool(CKA_TOKEN, true)?;
            t.require_bool(CKA_EXTRACTABLE, false)?;
            t.require_bool(CKA_SENSITIVE, true)?;
        }
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
        let id = get(CKA_ID).map(<[u8]>::to_vec);
        if id.as_ref().is_some_and(|i| i.is_empty() || i.len() > 32)
            || label
                .as_ref()
                .is_some_and(|l| crate::app::check_key_label(l).is_err())
        {
            return Err(CKR_ATTRIBUTE_VALUE_INVALID);
        }
        Ok(KeyPairRequest { alg, label, id })
    }
}
