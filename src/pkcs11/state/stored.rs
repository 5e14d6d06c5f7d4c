//! Certificates and data objects of the store (`tokens/<label>/objects/`): read
//! into the object table with no TPM command, written back as records. A private
//! object's value is encrypted under the token secret ([`crate::crypto::at_rest`]):
//! it joins the table once the secret is known (the user's login on a PIN token;
//! on a no-PIN token the secret is unsealed, with no PIN, when such an object is
//! first listed) and leaves it at logout.

use rand_core::RngCore;
use zeroize::Zeroizing;

use super::{Kind, Login, Module, Object, Rv};
use crate::cert::new_uid;
use crate::crypto::at_rest::{self, Encrypted};
use crate::pkcs11::certificate::CertObject;
use crate::pkcs11::data::DataObject;
use crate::pkcs11::storage::Storage;
use crate::store::{from_hex, to_hex, EncryptedRecord, ObjectRecord, FORMAT_VERSION};
use cryptoki_sys::*;

impl Object {
    /// The storage attributes of a certificate or data object.
    pub(super) fn storage(&self) -> Option<&Storage> {
        match &self.kind {
            Kind::Certificate(c) => Some(&c.storage),
            Kind::Data(d) => Some(&d.storage),
            Kind::Key(_) | Kind::Secret(_) => None,
        }
    }

    /// The store record of a token certificate or data object of `slot`.
    fn token_record(&self, slot: usize) -> Option<&ObjectRecord> {
        if self.slot != slot || self.session.is_some() {
            return None;
        }
        self.storage().and_then(|s| s.record.as_ref())
    }
}

/// A certificate or data object from its record and value.
fn from_record(r: &ObjectRecord, value: Vec<u8>) -> Option<Kind> {
    let path = std::path::Path::new(&r.uid);
    let storage = Storage {
        label: r.label.clone(),
        private: r.encrypted.is_some(),
        modifiable: r.modifiable,
        copyable: r.copyable,
        destroyable: r.destroyable,
        record: Some(r.clone()),
    };
    match r.class.as_str() {
        ObjectRecord::CERTIFICATE => {
            let mut c = CertObject::from_der(value).ok()?;
            c.storage = storage;
            c.id = from_hex(&r.id, path).ok()?;
            c.trusted = r.trusted;
            c.category = r.category as CK_ULONG;
            c.start = r.start_date.as_bytes().to_vec();
            c.end = r.end_date.as_bytes().to_vec();
            Some(Kind::Certificate(Box::new(c)))
        }
        ObjectRecord::DATA => Some(Kind::Data(Box::new(DataObject {
            storage,
            application: r.application.clone(),
            object_id: from_hex(&r.object_id, path).ok()?,
            value: Zeroizing::new(value),
        }))),
        _ => None,
    }
}

/// The record of a certificate or data object (`uid` its file name), its value
/// encrypted under `secret` when it is private.
///
/// # Errors
/// CKR_USER_NOT_LOGGED_IN for a private object without the secret.
pub(super) fn to_record(
    kind: &Kind,
    uid: &str,
    created: u64,
    secret: Option<&[u8]>,
) -> Result<ObjectRecord, Rv> {
    let (storage, value) = match kind {
        Kind::Certificate(c) => (&c.storage, &c.value[..]),
        Kind::Data(d) => (&d.storage, &d.value[..]),
        Kind::Key(_) | Kind::Secret(_) => return Err(CKR_GENERAL_ERROR),
    };
    let (value, encrypted) = if storage.private {
        let secret = secret.ok_or(CKR_USER_NOT_LOGGED_IN)?;
        let mut nonce = [0u8; 16];
        rand_core::OsRng.fill_bytes(&mut nonce);
        let e = at_rest::encrypt(secret, uid, &nonce, value);
        let e = EncryptedRecord {
            nonce: to_hex(&e.nonce),
            ciphertext: to_hex(&e.ciphertext),
            mac: to_hex(&e.mac),
        };
        (None, Some(e))
    } else {
        (Some(to_hex(value)), None)
    };
    let mut r = ObjectRecord {
        version: FORMAT_VERSION,
        uid: uid.to_string(),
        class: String::new(),
        label: storage.label.clone(),
        id: String::new(),
        application: String::new(),
        object_id: String::new(),
        value,
        encrypted,
        category: 0,
        trusted: false,
        start_date: String::new(),
        end_date: String::new(),
        modifiable: storage.modifiable,
        copyable: storage.copyable,
        destroyable: storage.destroyable,
        created,
    };
    match kind {
        Kind::Certificate(c) => {
            r.class = ObjectRecord::CERTIFICATE.into();
            r.id = to_hex(&c.id);
            // CK_ULONG is u64 on LP64 Linux, narrower elsewhere.
            #[allow(clippy::unnecessary_cast)]
            let category = c.category as u64;
            r.category = category;
            r.trusted = c.trusted;
            r.start_date = String::from_utf8_lossy(&c.start).into_owned();
            r.end_date = String::from_utf8_lossy(&c.end).into_owned();
        }
        Kind::Data(d) => {
            r.class = ObjectRecord::DATA.into();
            r.application = d.application.clone();
            r.object_id = to_hex(&d.object_id);
        }
        Kind::Key(_) | Kind::Secret(_) => {}
    }
    Ok(r)
}

/// Decrypts a private record's value.
fn open(r: &ObjectRecord, e: &EncryptedRecord, secret: &[u8]) -> Option<Vec<u8>> {
    let path = std::path::Path::new(&r.uid);
    let e = Encrypted {
        nonce: from_hex(&e.nonce, path).ok()?,
        ciphertext: from_hex(&e.ciphertext, path).ok()?,
        mac: from_hex(&e.mac, path).ok()?,
    };
    at_rest::decrypt(secret, &r.uid, &e).map(|v| v.to_vec())
}

impl Module {
    /// The token secret for private objects: from the user's login, or unsealed
    /// now (no PIN) on a no-PIN token and kept as its login.
    ///
    /// # Errors
    /// CKR_USER_NOT_LOGGED_IN on a PIN token before login; TPM errors.
    pub(super) fn object_secret(&mut self, slot: usize) -> Result<Zeroizing<Vec<u8>>, Rv> {
        if let Some(Login::User(Some(s))) = &self.slots[slot].login {
            return Ok(s.clone());
        }
        if !self.slots[slot].token.no_pin {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        let label = self.slots[slot].label.clone();
        let secret = self.with_connected(|app, c| app.unseal_token(c, &label, b"", false))?;
        self.slots[slot].login = Some(Login::User(Some(secret.clone())));
        Ok(secret)
    }

    /// Re-reads a token's certificates and data objects: new records get new
    /// handles, removed or changed ones lose theirs (a change made through this
    /// module updates its object in place). Private ones join once the token
    /// secret is known.
    pub(super) fn refresh_stored(&mut self, slot: usize) {
        let Some(app) = &self.app else { return };
        let label = self.slots[slot].label.clone();
        let records = app
            .store
            .read_objects(&label)
            .map(|(r, _)| r)
            .unwrap_or_default();
        for o in self.objects.iter_mut() {
            if o.as_ref()
                .and_then(|o| o.token_record(slot))
                .is_some_and(|r| !records.contains(r))
            {
                *o = None;
            }
        }
        let fresh: Vec<ObjectRecord> = records
            .into_iter()
            .filter(|r| {
                !self
                    .objects
                    .iter()
                    .flatten()
                    .any(|o| o.token_record(slot) == Some(r))
            })
            .collect();
        let mut secret = None;
        if fresh.iter().any(|r| r.encrypted.is_some()) && self.user_logged_in(slot) {
            secret = self.object_secret(slot).ok();
        }
        for r in fresh {
            let value = match (&r.value, &r.encrypted, &secret) {
                (Some(v), None, _) => from_hex(v, std::path::Path::new(&r.uid)).ok(),
                (None, Some(e), Some(s)) => open(&r, e, s),
                _ => None,
            };
            if let Some(kind) = value.and_then(|v| from_record(&r, v)) {
                self.objects.push(Some(Object {
                    slot,
                    session: None,
                    kind,
                }));
            }
        }
    }

    /// Forgets the decrypted private token objects of `slot` (at logout; the next
    /// listing after a login reads them again).
    pub(super) fn forget_private_stored(&mut self, slot: usize) {
        for o in self.objects.iter_mut() {
            if o.as_ref().is_some_and(|o| {
                o.slot == slot && o.session.is_none() && o.storage().is_some_and(|s| s.private)
            }) {
                *o = None;
            }
        }
    }

    /// Writes a token certificate or data object (a new uid when it has no record
    /// yet) and returns its record.
    ///
    /// # Errors
    /// CKR_USER_NOT_LOGGED_IN (a private object without the secret), store errors.
    pub(super) fn write_stored(&mut self, slot: usize, kind: &Kind) -> Result<ObjectRecord, Rv> {
        let (uid, created) = match kind {
            Kind::Certificate(c) => c.storage.record.as_ref(),
            Kind::Data(d) => d.storage.record.as_ref(),
            Kind::Key(_) | Kind::Secret(_) => None,
        }
        .map_or_else(
            || (new_uid(), crate::app::now()),
            |r| (r.uid.clone(), r.created),
        );
        let private = match kind {
            Kind::Certificate(c) => c.storage.private,
            Kind::Data(d) => d.storage.private,
            Kind::Key(_) | Kind::Secret(_) => false,
        };
        let secret = if private {
            Some(self.object_secret(slot)?)
        } else {
            None
        };
        let record = to_record(kind, &uid, created, secret.as_deref().map(|s| &s[..]))?;
        let label = self.slots[slot].label.clone();
        let app = self.app()?;
        app.store
            .lock()
            .and_then(|_l| app.store.write_object(&label, &record))
            .map_err(|e| super::rv_of(&crate::error::Error::Store(e)))?;
        Ok(record)
    }

    /// Removes a token certificate or data object's record.
    ///
    /// # Errors
    /// Store errors.
    pub(super) fn remove_stored(&self, slot: usize, uid: &str) -> Result<(), Rv> {
        let label = &self.slots[slot].label;
        let app = self.app()?;
        app.store
            .lock()
            .and_then(|_l| app.store.remove_object(label, uid))
            .map_err(|e| super::rv_of(&crate::error::Error::Store(e)))
    }
}
