//! The objects of each token (PKCS#11 2.40 Base §5.7): handles, visibility,
//! C_FindObjects*, C_GetAttributeValue and C_DestroyObject.

use std::sync::Arc;

use super::{rv_of, KeyHalf, Kind, Module, Object, Rv};
use crate::app::{parse_algorithm, unwrap_record};
use crate::error::Error;
use crate::pkcs11::objects::{AttrValue, Class, KeyView};
use crate::store::{from_hex, KeyRecord};
use cryptoki_sys::*;

impl Module {
    // ---- objects ----

    /// Re-reads a token's objects from the store.
    pub(super) fn refresh_objects(&mut self, slot: usize) {
        self.refresh_keys(slot);
        self.refresh_stored(slot);
    }

    /// Re-reads a token's keys: new keys get new handles, removed keys lose
    /// theirs, the others keep them.
    fn refresh_keys(&mut self, slot: usize) {
        let Some(app) = &self.app else { return };
        let label = self.slots[slot].label.clone();
        let needs_login = !self.slots[slot].token.no_pin;
        // A key file that cannot be read hides that key only, and is said on stderr.
        let mut problems = Vec::new();
        let mut keys = match app.store.read_keys(&label) {
            Ok((keys, bad)) => {
                problems.extend(bad.iter().map(|e| format!("a key is not shown: {e}")));
                keys
            }
            Err(e) => {
                problems.push(format!("the keys of token {label:?} are not shown: {e}"));
                Vec::new()
            }
        };
        // Oldest first, so that listings (ssh-keygen -D, pkcs11-tool -O) keep one order.
        keys.sort_by(|a, b| (a.created, &a.label).cmp(&(b.created, &b.label)));
        let path = app.store.root().join("tokens").join(&label);
        for o in self.objects.iter_mut() {
            if o.as_ref()
                .and_then(|o| o.token_key(slot))
                .is_some_and(|t| !keys.iter().any(|k| k.id == t.record.id))
            {
                *o = None;
            }
        }
        for k in keys {
            let known = self
                .objects
                .iter()
                .flatten()
                .filter_map(|o| o.token_key(slot))
                .any(|t| t.record.id == k.id && t.record.blob == k.blob);
            if known {
                self.relabel_key(slot, k);
                continue;
            }
            // A key file rewritten under the same id: drop the old objects.
            for o in self.objects.iter_mut() {
                if o.as_ref()
                    .and_then(|o| o.token_key(slot))
                    .is_some_and(|t| t.record.id == k.id)
                {
                    *o = None;
                }
            }
            let (alg, wrapped, id) = match (
                parse_algorithm(&k.algorithm),
                unwrap_record(&k.blob, &path),
                from_hex(k.shown_id(), &path),
            ) {
                (Ok(alg), Ok(wrapped), Ok(id)) => (alg, wrapped, id),
                (a, w, i) => {
                    let why = [a.err(), w.err(), i.err().map(Error::Store)]
                        .into_iter()
                        .flatten()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ");
                    problems.push(format!(
                        "key {:?} of token {label:?} is not shown: {why}",
                        k.label
                    ));
                    continue;
                }
            };
            let view = Arc::new(KeyView {
                label: k.label.clone(),
                id,
                alg,
                public: wrapped.public.clone(),
                imported: k.imported,
                private_needs_login: needs_login,
            });
            let record = Arc::new(k);
            let wrapped = Arc::new(wrapped);
            for class in [Class::Private, Class::Public] {
                self.objects.push(Some(Object {
                    slot,
                    session: None,
                    kind: Kind::Key(KeyHalf {
                        class,
                        view: view.clone(),
                        record: record.clone(),
                        wrapped: wrapped.clone(),
                        auth: None,
                    }),
                }));
            }
        }
        for p in problems {
            self.report(p);
        }
    }

    /// A key's label or CKA_ID changed in the store (by another process): its
    /// objects keep their handles and show the new values.
    fn relabel_key(&mut self, slot: usize, k: KeyRecord) {
        let Ok(id) = from_hex(k.shown_id(), std::path::Path::new(&k.id)) else {
            return;
        };
        let record = Arc::new(k);
        for o in self.objects.iter_mut().flatten() {
            if o.slot != slot || o.session.is_some() {
                continue;
            }
            if let Kind::Key(h) = &mut o.kind {
                if h.record.id == record.id && *h.record != *record {
                    let mut view = (*h.view).clone();
                    view.label = record.label.clone();
                    view.id = id.clone();
                    h.view = Arc::new(view);
                    h.record = record.clone();
                }
            }
        }
    }

    /// The object `oh` as seen from session `h`: it must be on the session's
    /// token, and a private object needs the user logged in.
    pub(super) fn object(&self, h: CK_SESSION_HANDLE, oh: CK_OBJECT_HANDLE) -> Result<&Object, Rv> {
        let s = self.sessions.get(&h).ok_or(CKR_SESSION_HANDLE_INVALID)?;
        let i = usize::try_from(oh)
            .ok()
            .and_then(|x| x.checked_sub(1))
            .ok_or(CKR_OBJECT_HANDLE_INVALID)?;
        let o = self
            .objects
            .get(i)
            .and_then(|o| o.as_ref())
            .ok_or(CKR_OBJECT_HANDLE_INVALID)?;
        if o.slot != s.slot || !self.visible(o) {
            return Err(CKR_OBJECT_HANDLE_INVALID);
        }
        Ok(o)
    }

    /// A private object is seen only while the user is logged in (§4.4.1).
    pub(super) fn visible(&self, o: &Object) -> bool {
        !o.is_private() || self.user_logged_in(o.slot)
    }

    /// C_FindObjectsInit.
    ///
    /// # Errors
    /// CKR_OPERATION_ACTIVE, session errors.
    pub fn find_init(
        &mut self,
        h: CK_SESSION_HANDLE,
        template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<(), Rv> {
        let slot = {
            let s = self.session(h)?;
            if s.find.is_some() {
                return Err(CKR_OPERATION_ACTIVE);
            }
            s.slot
        };
        self.refresh_objects(slot);
        let found: Vec<CK_OBJECT_HANDLE> = self
            .objects
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.as_ref().map(|o| (i, o)))
            .filter(|(_, o)| o.slot == slot && self.visible(o) && o.matches(template))
            .map(|(i, _)| (i + 1) as CK_OBJECT_HANDLE)
            .rev()
            .collect();
        self.session(h)?.find = Some(found);
        Ok(())
    }

    /// C_FindObjects: up to `max` more handles.
    ///
    /// # Errors
    /// CKR_OPERATION_NOT_INITIALIZED, session errors.
    pub fn find_next(
        &mut self,
        h: CK_SESSION_HANDLE,
        max: usize,
    ) -> Result<Vec<CK_OBJECT_HANDLE>, Rv> {
        let f = self
            .session(h)?
            .find
            .as_mut()
            .ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let mut out = Vec::new();
        while out.len() < max {
            match f.pop() {
                Some(x) => out.push(x),
                None => break,
            }
        }
        Ok(out)
    }

    /// C_FindObjectsFinal.
    ///
    /// # Errors
    /// CKR_OPERATION_NOT_INITIALIZED, session errors.
    pub fn find_final(&mut self, h: CK_SESSION_HANDLE) -> Result<(), Rv> {
        self.session(h)?
            .find
            .take()
            .map(|_| ())
            .ok_or(CKR_OPERATION_NOT_INITIALIZED)
    }

    /// C_GetAttributeValue for one attribute.
    ///
    /// # Errors
    /// Session and object handle errors.
    pub fn attribute(
        &self,
        h: CK_SESSION_HANDLE,
        oh: CK_OBJECT_HANDLE,
        t: CK_ATTRIBUTE_TYPE,
    ) -> Result<AttrValue, Rv> {
        Ok(self.object(h, oh)?.attribute(t))
    }

    /// C_DestroyObject. A key goes with both its objects: a token key from the
    /// store, a session key from memory; the TPM copy is flushed either way.
    ///
    /// # Errors
    /// CKR_SESSION_READ_ONLY (a token object from a read-only session),
    /// CKR_USER_NOT_LOGGED_IN, handle errors.
    pub fn destroy(&mut self, h: CK_SESSION_HANDLE, oh: CK_OBJECT_HANDLE) -> Result<(), Rv> {
        let (slot, owner, id) = {
            let o = self.object(h, oh)?;
            let id = match &o.kind {
                Kind::Key(k) => Some(k.record.id.clone()),
                Kind::Secret(_) => None,
                Kind::Certificate(_) | Kind::Data(_) => return self.destroy_stored(h, oh),
            };
            (o.slot, o.session, id)
        };
        // A derived secret is one session object, alone.
        let Some(id) = id else {
            if let Some(o) = self.objects.get_mut((oh - 1) as usize) {
                *o = None;
            }
            return Ok(());
        };
        if owner.is_none() && !self.sessions.get(&h).is_some_and(|s| s.rw) {
            return Err(CKR_SESSION_READ_ONLY);
        }
        if !self.user_logged_in(slot) {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        if owner.is_none() {
            let label = self.slots[slot].label.clone();
            let app = self.app()?;
            let r = app
                .store
                .lock()
                .and_then(|_l| app.store.remove_key(&label, &id));
            r.map_err(|e| rv_of(&Error::Store(e)))?;
        }
        let handles: Vec<CK_OBJECT_HANDLE> = self
            .objects
            .iter()
            .enumerate()
            .filter(|(_, o)| {
                o.as_ref().is_some_and(|o| {
                    o.slot == slot
                        && o.session == owner
                        && o.key().is_some_and(|k| k.record.id == id)
                })
            })
            .map(|(i, _)| (i + 1) as CK_OBJECT_HANDLE)
            .collect();
        for x in &handles {
            self.unload(*x);
            self.objects[(*x - 1) as usize] = None;
        }
        Ok(())
    }
}
