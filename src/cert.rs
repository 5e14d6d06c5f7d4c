//! `tpmkey cert`: X.509 certificates on a token, the way tpm2_ptool's `addcert`
//! puts them there for browsers and TLS clients. A certification request or a
//! self-signed certificate is signed by the TPM with the key ([`crate::x509`]);
//! an imported certificate whose public key is one of the token's keys is
//! attached to it (same CKA_ID, the key's label), a CA certificate is kept on its
//! own. Certificates are public data: they sit in clear in the store
//! (`tokens/<label>/objects/<uid>.json`) and are listed by the PKCS#11 module
//! with no TPM command.

use rand_core::{OsRng, RngCore};
use x509_cert::der::Encode;

use crate::app::{now, unwrap_record, App};
use crate::error::{Error, Result};
use crate::keys::ops::WrappedKey;
use crate::store::{from_hex, to_hex, KeyRecord, ObjectRecord, FORMAT_VERSION};
use crate::x509::{self, CertInfo};

/// CK_CERTIFICATE_CATEGORY_TOKEN_USER: the certificate of one of the token's keys.
pub const CATEGORY_TOKEN_USER: u64 = 1;
/// CK_CERTIFICATE_CATEGORY_AUTHORITY: a CA certificate.
pub const CATEGORY_AUTHORITY: u64 = 2;

/// What `cert import` did with one certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The label it has on the token.
    pub label: String,
    /// Its subject.
    pub subject: String,
    /// The key it was attached to, if any.
    pub key: Option<String>,
    /// It was on the token already (nothing written).
    pub already: bool,
    /// The labels of earlier certificates of the same key that it replaced.
    pub replaced: Vec<String>,
}

/// One certificate of `cert list`.
#[derive(Clone, Debug)]
pub struct Listed {
    /// The token.
    pub token: String,
    /// The store record.
    pub record: ObjectRecord,
    /// What the certificate says (None for a private certificate, whose value is
    /// encrypted).
    pub info: Option<CertInfo>,
    /// The label of the key with the same CKA_ID, if any.
    pub key: Option<String>,
}

/// A fresh object uid (file name): 16 random hex digits.
pub fn new_uid() -> String {
    let mut b = [0u8; 8];
    OsRng.fill_bytes(&mut b);
    to_hex(&b)
}

/// The first CN of a subject, else the whole subject (a label for a CA).
fn common_name(subject_text: &str) -> String {
    subject_text
        .split(',')
        .find_map(|p| {
            p.strip_prefix("CN=")
                .or_else(|| p.strip_prefix("cn="))
                .or_else(|| p.strip_prefix("commonName="))
        })
        .unwrap_or(subject_text)
        .to_string()
}

impl App {
    /// The key `label` of `token` ([`App::find_key`]), with its wrapped form.
    fn find_wrapped_key(&self, token: &str, label: &str) -> Result<(KeyRecord, WrappedKey)> {
        let k = self.find_key(token, label)?;
        let w = unwrap_record(&k.blob, &self.token_path(token))?;
        Ok((k, w))
    }

    /// `tpmkey cert request`: a PKCS#10 request (PEM) for key `key` of `token`,
    /// signed by the TPM (one signature; the user PIN unseals the token secret).
    ///
    /// # Errors
    /// Unknown token or key, a subject or SAN that does not parse, wrong PIN, TPM
    /// errors.
    pub fn cert_request(
        &self,
        token: &str,
        key: &str,
        pin: &[u8],
        subject: &str,
        sans: &str,
    ) -> Result<String> {
        let subject = x509::parse_subject(subject)?;
        let sans = x509::parse_sans(sans)?;
        let (_, w) = self.find_wrapped_key(token, key)?;
        let req = x509::build_request(&w.public, subject, sans, |hash, tbs| {
            self.sign_data(token, key, pin, hash, tbs)
        })?;
        x509::to_pem(&req)
    }

    /// `tpmkey cert selfsign`: a self-signed certificate (PEM) for key `key` of
    /// `token`, valid for `days` from now, signed by the TPM, and attached to the
    /// key on the token as [`App::cert_import`] does.
    ///
    /// # Errors
    /// As [`App::cert_request`]; store errors.
    #[allow(clippy::too_many_arguments)]
    pub fn cert_selfsign(
        &self,
        token: &str,
        key: &str,
        pin: &[u8],
        subject: &str,
        sans: &str,
        days: u32,
    ) -> Result<String> {
        if days == 0 {
            return Err(Error::Usage("--days must be at least 1".into()));
        }
        let subject = x509::parse_subject(subject)?;
        let sans = x509::parse_sans(sans)?;
        let (_, w) = self.find_wrapped_key(token, key)?;
        let mut serial = [0u8; 16];
        OsRng.fill_bytes(&mut serial);
        serial[0] = (serial[0] & 0x7f) | 0x01;
        let cert =
            x509::build_self_signed(&w.public, subject, sans, now(), days, &serial, |h, t| {
                self.sign_data(token, key, pin, h, t)
            })?;
        let der = cert
            .to_der()
            .map_err(|e| Error::Usage(format!("certificate: {e}")))?;
        self.cert_import(token, &der, None, false)?;
        x509::to_pem(&cert)
    }

    /// `tpmkey cert import`: the certificates of `bytes` (PEM or DER, one or a
    /// chain) onto `token`. One whose public key is a key of the token is attached
    /// to it (its CKA_ID, `label` or the key's label; an earlier certificate of
    /// that key is replaced); a CA certificate is stored on its own (`label` or its
    /// CN); anything else only with `standalone`. All are checked before anything
    /// is written.
    ///
    /// # Errors
    /// A file that is not PEM/DER certificates (or is truncated), a certificate of
    /// another token's key, one that matches no key and is no CA certificate
    /// (without `standalone`), a label taken by another certificate, `label`
    /// with more than one certificate to label.
    pub fn cert_import(
        &self,
        token: &str,
        bytes: &[u8],
        label: Option<&str>,
        standalone: bool,
    ) -> Result<Vec<Imported>> {
        let ders = x509::parse_certificates(bytes)?;
        if label.is_some() && ders.len() > 1 {
            return Err(Error::Usage(
                "--label names one certificate; this file holds a chain".into(),
            ));
        }
        let _lock = self.store.lock()?;
        self.store.read_token(token)?;
        let path = self.token_path(token);
        let (keys, _) = self.store.read_keys(token)?;
        let ours: Vec<(KeyRecord, _)> = keys
            .into_iter()
            .filter_map(|k| {
                let p = unwrap_record(&k.blob, &path).and_then(|w| x509::key_of(&w.public));
                p.ok().map(|p| (k, p))
            })
            .collect();
        let (mut objects, _) = self.store.read_objects(token)?;
        let (mut writes, mut removals, mut out) = (Vec::new(), Vec::new(), Vec::new());
        for der in &ders {
            let info = x509::inspect(der)?;
            let value = to_hex(der);
            let mine = ours.iter().find(|(_, p)| *p == info.key).map(|(k, _)| k);
            let mut done = Imported {
                label: String::new(),
                subject: info.subject_text.clone(),
                key: mine.map(|k| k.label.clone()),
                already: false,
                replaced: Vec::new(),
            };
            if let Some(o) = objects.iter().find(|o| o.value.as_ref() == Some(&value)) {
                done.label = o.label.clone();
                done.already = true;
                out.push(done);
                continue;
            }
            let (rec_label, id, category) = match mine {
                Some(k) => (
                    label.unwrap_or(&k.label).to_string(),
                    k.shown_id().to_string(),
                    CATEGORY_TOKEN_USER,
                ),
                None => {
                    if let Some((t, k)) = self.key_elsewhere(token, &info.key)? {
                        return Err(Error::Usage(format!(
                            "the certificate {} is for key {k:?} of token {t:?}, not of token {token:?}: import it with --token {t}",
                            info.subject_text
                        )));
                    }
                    if !info.is_ca && !standalone {
                        return Err(Error::Usage(format!(
                            "the certificate {} matches no key of token {token:?} and is not a CA certificate; make the key with `tpmkey key add` first, or store it anyway with --standalone",
                            info.subject_text
                        )));
                    }
                    let category = if info.is_ca { CATEGORY_AUTHORITY } else { 0 };
                    let l = label.map_or_else(|| common_name(&info.subject_text), str::to_string);
                    (l, String::new(), category)
                }
            };
            // A new certificate of a key replaces the key's earlier one.
            let (replaced, kept): (Vec<ObjectRecord>, Vec<ObjectRecord>) =
                objects.into_iter().partition(|o| {
                    mine.is_some()
                        && o.class == ObjectRecord::CERTIFICATE
                        && o.category == CATEGORY_TOKEN_USER
                        && o.id == id
                });
            objects = kept;
            if objects
                .iter()
                .any(|o| o.class == ObjectRecord::CERTIFICATE && o.label == rec_label)
            {
                return Err(Error::Usage(format!(
                    "token {token:?} has a certificate labelled {rec_label:?} already: choose another with --label, or remove it with `tpmkey cert rm`"
                )));
            }
            done.label = rec_label.clone();
            done.replaced = replaced.iter().map(|r| r.label.clone()).collect();
            removals.extend(replaced.into_iter().map(|r| r.uid));
            let record = ObjectRecord {
                version: FORMAT_VERSION,
                uid: new_uid(),
                class: ObjectRecord::CERTIFICATE.into(),
                label: rec_label,
                id,
                application: String::new(),
                object_id: String::new(),
                value: Some(value),
                encrypted: None,
                category,
                trusted: false,
                start_date: String::new(),
                end_date: String::new(),
                modifiable: true,
                copyable: true,
                destroyable: true,
                created: now(),
            };
            objects.push(record.clone());
            writes.push(record);
            out.push(done);
        }
        // Everything checked: write.
        for r in &writes {
            self.store.write_object(token, r)?;
        }
        for uid in removals {
            self.store.remove_object(token, &uid)?;
        }
        Ok(out)
    }

    /// The (token, key label) of another token holding the key `key`.
    fn key_elsewhere(
        &self,
        token: &str,
        key: &(x509_cert::der::oid::ObjectIdentifier, Vec<u8>),
    ) -> Result<Option<(String, String)>> {
        for t in self.store.token_labels()? {
            if t == token {
                continue;
            }
            let path = self.token_path(&t);
            let (keys, _) = self.store.read_keys(&t)?;
            for k in keys {
                let p = unwrap_record(&k.blob, &path).and_then(|w| x509::key_of(&w.public));
                if p.is_ok_and(|p| &p == key) {
                    return Ok(Some((t, k.label)));
                }
            }
        }
        Ok(None)
    }

    /// `tpmkey cert list`: the certificates of one token or all (the store only,
    /// no TPM).
    ///
    /// # Errors
    /// Store errors; corrupt object files are left out.
    pub fn cert_list(&self, token: Option<&str>) -> Result<Vec<Listed>> {
        let labels = self.tokens_named(token)?;
        let mut out = Vec::new();
        for t in labels {
            let path = self.token_path(&t);
            let (keys, _) = self.store.read_keys(&t)?;
            let (objects, _) = self.store.read_objects(&t)?;
            for record in objects
                .into_iter()
                .filter(|o| o.class == ObjectRecord::CERTIFICATE)
            {
                let info = record
                    .value
                    .as_ref()
                    .and_then(|v| from_hex(v, &path).ok())
                    .and_then(|d| x509::inspect(&d).ok());
                let key = keys
                    .iter()
                    .find(|k| !record.id.is_empty() && k.shown_id() == record.id)
                    .map(|k| k.label.clone());
                out.push(Listed {
                    token: t.clone(),
                    record,
                    info,
                    key,
                });
            }
        }
        Ok(out)
    }

    /// The one certificate labelled `label` on `token`.
    fn cert_by_label(&self, token: &str, label: &str) -> Result<ObjectRecord> {
        self.store.read_token(token)?;
        let (objects, _) = self.store.read_objects(token)?;
        let mut found: Vec<ObjectRecord> = objects
            .into_iter()
            .filter(|o| o.class == ObjectRecord::CERTIFICATE && o.label == label)
            .collect();
        match found.len() {
            0 => Err(Error::Usage(format!(
                "token {token:?} has no certificate labelled {label:?} (see `tpmkey cert list`)"
            ))),
            1 => Ok(found.remove(0)),
            n => Err(Error::Usage(format!(
                "token {token:?} has {n} certificates labelled {label:?}; rename one through PKCS#11 first"
            ))),
        }
    }

    /// `tpmkey cert export`: the DER of certificate `label` of `token`.
    ///
    /// # Errors
    /// No such certificate, several with that label, a private one.
    pub fn cert_export(&self, token: &str, label: &str) -> Result<Vec<u8>> {
        let r = self.cert_by_label(token, label)?;
        let v = r.value.as_ref().ok_or_else(|| {
            Error::Usage(format!(
                "certificate {label:?} is private (encrypted on the token): read it through the PKCS#11 module after login"
            ))
        })?;
        Ok(from_hex(v, &self.token_path(token))?)
    }

    /// `tpmkey cert rm`: removes certificate `label` of `token` (the key stays).
    ///
    /// # Errors
    /// No such certificate, several with that label.
    pub fn cert_rm(&self, token: &str, label: &str) -> Result<()> {
        let _lock = self.store.lock()?;
        let r = self.cert_by_label(token, label)?;
        Ok(self.store.remove_object(token, &r.uid)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_names_label_ca_certificates() {
        assert_eq!(common_name("CN=Test CA,O=Example"), "Test CA");
        assert_eq!(common_name("O=Example"), "O=Example");
        assert_eq!(new_uid().len(), 16);
    }
}
