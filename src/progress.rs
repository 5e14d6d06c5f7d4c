//! Progress of slow TPM work, for a front end that wants to show it.
//!
//! Some TPM commands take seconds on hardware TPMs (RSA key generation, deriving
//! an RSA storage root key, a TPM that answers TPM_RC_RETRY while busy). The
//! library marks those steps with [`step`]; a front end that registers an
//! [`Observer`] sees them begin and end. Nothing is registered by default: the
//! PKCS#11 module never registers one (it must not write to its host's terminal),
//! the `tpmkey` CLI does so only when stderr is a terminal.

use std::sync::OnceLock;

/// Shown while a slow step runs. Steps nest (a busy TPM during a key creation):
/// every [`Observer::begin`] is followed by one [`Observer::end`], innermost first.
pub trait Observer: Send + Sync {
    /// A step begins; `what` names it ("creating an RSA-3072 key inside the TPM …").
    fn begin(&self, what: &str);
    /// The innermost running step ended (done or failed).
    fn end(&self);
}

static OBSERVER: OnceLock<Box<dyn Observer>> = OnceLock::new();

/// Registers the process's observer. Only the first registration counts: returns
/// false when one was already registered.
pub fn set_observer(observer: Box<dyn Observer>) -> bool {
    OBSERVER.set(observer).is_ok()
}

/// A running step; the observer hears its end when this is dropped.
#[must_use = "the step ends when this is dropped"]
pub struct Step(Option<&'static dyn Observer>);

/// Begins a slow step named by `what` (called only when an observer listens).
pub fn step(what: impl FnOnce() -> String) -> Step {
    match OBSERVER.get() {
        Some(o) => {
            o.begin(&what());
            Step(Some(o.as_ref()))
        }
        None => Step(None),
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if let Some(o) = self.0 {
            o.end();
        }
    }
}
