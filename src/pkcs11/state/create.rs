//! C_CreateObject, C_CopyObject, C_SetAttributeValue, C_GetObjectSize and the
//! destruction of certificates and data objects (PKCS#11 2.40 Base §5.7).
//!
//! - Certificates and data objects are created as token objects (CKA_TOKEN true:
//!   written to the store) or session objects (CKA_TOKEN false, the default: in
//!   memory until C_CloseSession). A read-only session creates session objects
//!   only; a private object (CKA_PRIVATE true) needs the user logged in.
//! - Keys are never created from plaintext: a private key must go into the TPM
//!   with `tpmkey key import` (TPM2_Import), never through the module in clear.
//!   A key's CKA_LABEL and CKA_ID may change (the key record is rewritten; its
//!   authValue stays bound to the id it was made with); a key is not copyable.

use std::sync::Arc;

use super::{diagnose, rv_of, Kind, Login, Module, Object, Rv};
use crate::error::Error;
use crate::pkcs11::certificate::CertObject;
use crate::pkcs11::data::DataObject;
use crate::pkcs11::objects::AttrValue;
use crate::pkcs11::storage::{read_text, Phase, MAX_NAME_LEN};
use crate::pkcs11::template::Template;
use crate::store::to_hex;
use cryptoki_sys::*;

type Attrs = [(CK_ATTRIBUTE_TYPE, Vec<u8>)];

impl Module {
    /// The session's slot and whether it is read/write.
    fn session_slot(&mut self, h: CK_SESSION_HANDLE) -> Result<(usize, bool), Rv> {
        let s = self.session(h)?;
        Ok((s.slot, s.rw))
    }

    fn so_logged_in(&self, slot: usize) -> bool {
        matches!(self.slots[slot].login, Some(Login::So(_)))
    }

    /// §5.7: a read-only session makes session objects only; private objects need
    /// the user.
    fn may_create(&self, slot: usize, rw: bool, token: bool, private: bool) -> Result<(), Rv> {
        if token && !rw {
            return Err(CKR_SESSION_READ_ONLY);
        }
        if private && !self.user_logged_in(slot) {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        Ok(())
    }

    /// Puts a new certificate or data object in the table (and, for a token
    /// object, in the store).
    fn add_object(
        &mut self,
        slot: usize,
        h: CK_SESSION_HANDLE,
        token: bool,
        mut kind: Kind,
    ) -> Result<CK_OBJECT_HANDLE, Rv> {
        if token {
            let record = self.write_stored(slot, &kind)?;
            match &mut kind {
                Kind::Certificate(c) => c.storage.record = Some(record),
                Kind::Data(d) => d.storage.record = Some(record),
                Kind::Key(_) | Kind::Secret(_) => return Err(CKR_GENERAL_ERROR),
            }
        }
        self.objects.push(Some(Object {
            slot,
            session: (!token).then_some(h),
            kind,
        }));
        Ok(self.objects.len() as CK_OBJECT_HANDLE)
    }

    /// C_CreateObject: a certificate (CKO_CERTIFICATE, CKC_X_509) or a data object
    /// (CKO_DATA).
    ///
    /// # Errors
    /// CKR_TEMPLATE_INCOMPLETE (no CKA_CLASS), CKR_TEMPLATE_INCONSISTENT,
    /// CKR_ATTRIBUTE_VALUE_INVALID (a key class: keys go into the TPM with
    /// `tpmkey key import`; a value that is not a certificate; one too large),
    /// CKR_ATTRIBUTE_TYPE_INVALID, CKR_SESSION_READ_ONLY, CKR_USER_NOT_LOGGED_IN,
    /// store errors.
    pub fn create_object(
        &mut self,
        h: CK_SESSION_HANDLE,
        attrs: &Attrs,
    ) -> Result<CK_OBJECT_HANDLE, Rv> {
        let (slot, rw) = self.session_slot(h)?;
        let t = Template::new(attrs)?;
        let class = t.ulong(CKA_CLASS)?.ok_or(CKR_TEMPLATE_INCOMPLETE)?;
        let token = t.bool(CKA_TOKEN)?.unwrap_or(false);
        let kind = match class {
            CKO_CERTIFICATE => Kind::Certificate(Box::new(CertObject::create(
                attrs,
                self.so_logged_in(slot),
            )?)),
            CKO_DATA => Kind::Data(Box::new(DataObject::create(attrs)?)),
            CKO_PRIVATE_KEY | CKO_PUBLIC_KEY | CKO_SECRET_KEY => {
                diagnose(&Error::Usage(
                    "keys are not created from plaintext through PKCS#11: make one in the TPM (C_GenerateKeyPair, `tpmkey key add`) or import one with `tpmkey key import`".into(),
                ));
                return Err(CKR_ATTRIBUTE_VALUE_INVALID);
            }
            _ => return Err(CKR_ATTRIBUTE_VALUE_INVALID),
        };
        let private = t.bool(CKA_PRIVATE)?.unwrap_or(false);
        self.may_create(slot, rw, token, private)?;
        self.add_object(slot, h, token, kind)
    }

    /// C_CopyObject: a certificate or data object copied with the template's
    /// changes (CKA_TOKEN and CKA_PRIVATE among them). Keys are not copyable.
    ///
    /// # Errors
    /// CKR_ACTION_PROHIBITED (a key, CKA_COPYABLE false), as
    /// [`Module::create_object`], CKR_ATTRIBUTE_READ_ONLY.
    pub fn copy_object(
        &mut self,
        h: CK_SESSION_HANDLE,
        oh: CK_OBJECT_HANDLE,
        attrs: &Attrs,
    ) -> Result<CK_OBJECT_HANDLE, Rv> {
        let (slot, rw) = self.session_slot(h)?;
        let t = Template::new(attrs)?;
        let so = self.so_logged_in(slot);
        let o = self.object(h, oh)?;
        let token = t.bool(CKA_TOKEN)?.unwrap_or(o.session.is_none());
        let kind = match &o.kind {
            Kind::Certificate(c) if c.storage.copyable => {
                let mut c = c.clone();
                c.storage.record = None;
                c.apply(attrs, Phase::Copy, so)?;
                Kind::Certificate(c)
            }
            Kind::Data(d) if d.storage.copyable => {
                let mut d = d.clone();
                d.storage.record = None;
                d.apply(attrs, Phase::Copy)?;
                Kind::Data(d)
            }
            _ => return Err(CKR_ACTION_PROHIBITED),
        };
        let private = matches!(&kind, Kind::Certificate(c) if c.storage.private)
            || matches!(&kind, Kind::Data(d) if d.storage.private);
        self.may_create(slot, rw, token, private)?;
        self.add_object(slot, h, token, kind)
    }

    /// C_SetAttributeValue: what the spec lets change (a certificate's label, id
    /// and dates; a data object's label, application, object id and value; a key's
    /// label and id), written to the store for a token object.
    ///
    /// # Errors
    /// CKR_SESSION_READ_ONLY (a token object), CKR_USER_NOT_LOGGED_IN (a key),
    /// CKR_ATTRIBUTE_READ_ONLY, CKR_ACTION_PROHIBITED (CKA_MODIFIABLE false),
    /// CKR_ATTRIBUTE_VALUE_INVALID (a key label or id another key has), template
    /// and store errors.
    pub fn set_attributes(
        &mut self,
        h: CK_SESSION_HANDLE,
        oh: CK_OBJECT_HANDLE,
        attrs: &Attrs,
    ) -> Result<(), Rv> {
        let (slot, rw) = self.session_slot(h)?;
        let t = Template::new(attrs)?;
        let so = self.so_logged_in(slot);
        let o = self.object(h, oh)?;
        let token = o.session.is_none();
        if token && !rw {
            return Err(CKR_SESSION_READ_ONLY);
        }
        if t.bool(CKA_TOKEN)?.is_some_and(|v| v != token) {
            return Err(CKR_ATTRIBUTE_READ_ONLY);
        }
        if o.key().is_some() {
            return self.set_key_attributes(h, oh, &t);
        }
        let mut kind = match &o.kind {
            Kind::Key(_) => return Err(CKR_GENERAL_ERROR),
            // Derived secrets are made with CKA_MODIFIABLE false.
            Kind::Secret(_) => return Err(CKR_ACTION_PROHIBITED),
            Kind::Certificate(c) => {
                let mut c = c.clone();
                c.apply(attrs, Phase::Set, so)?;
                Kind::Certificate(c)
            }
            Kind::Data(d) => {
                let mut d = d.clone();
                d.apply(attrs, Phase::Set)?;
                Kind::Data(d)
            }
        };
        if token {
            let record = self.write_stored(slot, &kind)?;
            match &mut kind {
                Kind::Certificate(c) => c.storage.record = Some(record),
                Kind::Data(d) => d.storage.record = Some(record),
                Kind::Key(_) | Kind::Secret(_) => {}
            }
        }
        if let Some(Some(o)) = self.objects.get_mut((oh - 1) as usize) {
            o.kind = kind;
        }
        Ok(())
    }

    /// C_SetAttributeValue on a key: CKA_LABEL and CKA_ID (both of the key's
    /// objects change; a token key's record is rewritten); other attributes only
    /// restated.
    fn set_key_attributes(
        &mut self,
        h: CK_SESSION_HANDLE,
        oh: CK_OBJECT_HANDLE,
        t: &Template<'_>,
    ) -> Result<(), Rv> {
        let o = self.object(h, oh)?;
        let Kind::Key(k) = &o.kind else {
            return Err(CKR_GENERAL_ERROR);
        };
        let (slot, session) = (o.slot, o.session);
        let mut view = (*k.view).clone();
        let mut record = (*k.record).clone();
        for (ty, v) in t.attrs() {
            match *ty {
                CKA_LABEL => {
                    let l = read_text(v)?;
                    if l.is_empty() || l.len() > 255 {
                        return Err(CKR_ATTRIBUTE_VALUE_INVALID);
                    }
                    view.label = l;
                }
                CKA_ID => {
                    if v.is_empty() || v.len() > MAX_NAME_LEN {
                        return Err(CKR_ATTRIBUTE_VALUE_INVALID);
                    }
                    view.id = v.clone();
                }
                CKA_TOKEN => {}
                x if x >= CKA_VENDOR_DEFINED => {}
                x => match k.view.attribute(k.class, x) {
                    AttrValue::Value(same) if &same == v => {}
                    AttrValue::Value(_) | AttrValue::Sensitive => {
                        return Err(CKR_ATTRIBUTE_READ_ONLY)
                    }
                    AttrValue::Invalid => return Err(CKR_ATTRIBUTE_TYPE_INVALID),
                },
            }
        }
        if !self.user_logged_in(slot) {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        // Labels and ids name one key each: the CLI and pkcs11: URIs pick keys by them.
        let clash = self.objects.iter().flatten().any(|x| {
            x.slot == slot
                && x.key().is_some_and(|y| {
                    y.record.id != record.id && (y.view.label == view.label || y.view.id == view.id)
                })
        });
        if clash {
            return Err(CKR_ATTRIBUTE_VALUE_INVALID);
        }
        record.label = view.label.clone();
        let id = to_hex(&view.id);
        record.cka_id = (id != record.id).then_some(id);
        if session.is_none() {
            let label = self.slots[slot].label.clone();
            let app = self.app()?;
            let r = app.store.lock().and_then(|_l| {
                let (keys, _) = app.store.read_keys(&label)?;
                if !keys.iter().any(|x| x.id == record.id) {
                    return Err(crate::store::StoreError::Corrupt {
                        path: app.store.root().join("tokens").join(&label),
                        reason: format!("key {} was removed meanwhile", record.label),
                    });
                }
                app.store.write_key(&label, &record)
            });
            r.map_err(|e| rv_of(&Error::Store(e)))?;
        }
        let (view, record) = (Arc::new(view), Arc::new(record));
        for x in self.objects.iter_mut().flatten() {
            if let Kind::Key(y) = &mut x.kind {
                if x.slot == slot && x.session == session && y.record.id == record.id {
                    y.view = view.clone();
                    y.record = record.clone();
                }
            }
        }
        Ok(())
    }

    /// C_GetObjectSize: the bytes the object takes (a key: its TPM blob; a derived
    /// secret: its value).
    ///
    /// # Errors
    /// Session and object handle errors.
    pub fn object_size(&self, h: CK_SESSION_HANDLE, oh: CK_OBJECT_HANDLE) -> Result<usize, Rv> {
        Ok(match &self.object(h, oh)?.kind {
            Kind::Key(k) => (k.record.blob.private.len() + k.record.blob.public.len()) / 2,
            Kind::Certificate(c) => c.size(),
            Kind::Data(d) => d.size(),
            Kind::Secret(k) => k.value.len(),
        })
    }

    /// C_DestroyObject of a certificate or data object.
    ///
    /// # Errors
    /// CKR_SESSION_READ_ONLY (a token object), CKR_ACTION_PROHIBITED
    /// (CKA_DESTROYABLE false), store errors.
    pub(super) fn destroy_stored(
        &mut self,
        h: CK_SESSION_HANDLE,
        oh: CK_OBJECT_HANDLE,
    ) -> Result<(), Rv> {
        let (_, rw) = self.session_slot(h)?;
        let o = self.object(h, oh)?;
        let slot = o.slot;
        let storage = o.storage().ok_or(CKR_GENERAL_ERROR)?;
        if o.session.is_none() && !rw {
            return Err(CKR_SESSION_READ_ONLY);
        }
        if !storage.destroyable {
            return Err(CKR_ACTION_PROHIBITED);
        }
        if o.session.is_none() {
            let uid = storage.record.as_ref().map(|r| r.uid.clone());
            if let Some(uid) = uid {
                self.remove_stored(slot, &uid)?;
            }
        }
        self.objects[(oh - 1) as usize] = None;
        Ok(())
    }
}
