//! tpmkey: a pure-Rust TPM 2.0 stack that keeps SSH and signing keys inside the TPM.
//!
//! # For embedders
//!
//! The library is what the `tpmkey` CLI and the PKCS#11 module are built on; a
//! program can use the same calls directly. The usual steps:
//!
//! 1. **Open a TPM** from a tpm2-tss style TCTI string: [`Tpm::open`] with a
//!    [`Tcti`] (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`, …), or
//!    [`Tpm::from_env`] (`TPMKEY_TCTI`, `TPM2TOOLS_TCTI`, the default device).
//! 2. **Load the storage root key**: [`Srk::load`] takes the standard SRK at
//!    0x81000001 or derives it (TCG Provisioning Guidance §7.5.1). Pin its
//!    [`Srk::name`](keys::srk::Srk::name) and compare it next time
//!    ([`Srk::check_pinned`](keys::srk::Srk::check_pinned)): every session is salted to this key.
//! 3. **Start a salted session** for anything that carries a secret:
//!    [`Tpm::start_session`] with
//!    [`SessionParams::salted_hmac`](session::start::SessionParams::salted_hmac)
//!    (Part 3 §11.1 TPM2_StartAuthSession, Part 1 §19.6).
//! 4. **Create or load a key, sign**: [`keys::ops::create_key`] (Part 3 §12.1
//!    TPM2_Create; the result is a [`keys::ops::WrappedKey`], safe to store),
//!    [`keys::ops::load_key`] (Part 3 §12.2 TPM2_Load),
//!    [`keys::signature::sign_digest`] (Part 3 §20.2 TPM2_Sign; ECDSA r || s or
//!    RSA PKCS#1 v1.5) and [`keys::signature::verify`] to check it in software.
//! 5. **Seal a secret under a PCR policy**, optionally with a PIN, and unseal
//!    it — what an initramfs needs to unlock a disk: [`SealedSecret::seal`] /
//!    [`SealedSecret::unseal`] (Part 3 §23.7 TPM2_PolicyPCR, §23.17
//!    TPM2_PolicyAuthValue, §12.7 TPM2_Unseal with response encryption), saved
//!    with [`SealedSecret::to_json`] and read back with
//!    [`SealedSecret::from_json`]; PCR selections are [`PcrSelection`]s
//!    (`sha256:7,16`).
//!
//! `examples/embed.rs` runs all of it against a TPM (`cargo run --example embed
//! -- swtpm:host=127.0.0.1,port=2321`). In short:
//!
//! ```no_run
//! use tpmkey::keys::ops::{create_key, load_key};
//! use tpmkey::keys::signature::{sign_digest, verify};
//! use tpmkey::keys::templates::{KeyAlgorithm, SrkKind};
//! use tpmkey::session::start::SessionParams;
//! use tpmkey::crypto::hash::HashAlg;
//! use tpmkey::{Auth, PcrSelection, SealedSecret, Srk, Tcti, Tpm};
//!
//! # fn main() -> tpmkey::Result<()> {
//! let tcti: Tcti = "swtpm:host=127.0.0.1,port=2321"
//!     .parse()
//!     .map_err(|e: tpmkey::tcti::TctiError| tpmkey::Error::Usage(e.to_string()))?;
//! let mut tpm = Tpm::open(&tcti)?;
//! let srk = Srk::load(&mut tpm, SrkKind::Ecc)?;
//! let mut session = tpm.start_session(&SessionParams::salted_hmac(&srk.salt_key()?))?;
//!
//! // A P-256 key with a PIN, made inside the TPM; sign a SHA-256 digest.
//! let pin = b"1234";
//! let wrapped = create_key(&mut tpm, &srk, &mut session, KeyAlgorithm::Ecc256, pin)?;
//! let key = load_key(&mut tpm, &srk, &mut session, &wrapped)?;
//! let digest = HashAlg::Sha256.hash(&[b"message"]);
//! let sig = sign_digest(&mut tpm, &key, Auth::Session(&mut session, pin), HashAlg::Sha256, &digest)?;
//! verify(&wrapped.public, HashAlg::Sha256, &digest, &sig)?;
//!
//! // A secret only this TPM can unseal, while PCR 16 is unchanged.
//! let pcrs = PcrSelection::parse("sha256:16")?;
//! let sealed = SealedSecret::seal(&mut tpm, &srk, &pcrs, None, b"disk key")?;
//! assert_eq!(&sealed.unseal(&mut tpm, &srk, None)?[..], b"disk key");
//! # Ok(())
//! # }
//! ```
//!
//! Errors are [`Error`]: TPM response codes with their spec names
//! (`TPM_RC_AUTH_FAIL on session 1`), integrity failures of responses, and
//! messages that say what to do.
//!
//! # Layers
//!
//! Each depends only on those below it:
//! - [`tpm_commands`] (separate crate): the wire format.
//! - [`files`] and [`settings`]: reading files that may be hostile (regular files
//!   only, bounded), and the wait bounds from the environment; `holders`: which
//!   process holds what another waits for, from /proc, for the errors.
//! - [`transport`] and [`tcti`]: moving frames to `/dev/tpmrm0`, `/dev/tpm0`, swtpm.
//! - [`crypto`]: KDFs, session HMACs, parameter encryption.
//! - [`session`]: session state and the rules of which key and nonce go where (it
//!   sends nothing: [`Tpm`] drives it).
//! - [`Tpm`]: the one place commands are framed, authorized, sent, retried and
//!   verified; sessions started, policy commands run; a raw TPM let go of between
//!   operations and come back to ([`Tpm::release`], [`Tpm::acquire`]).
//! - [`keys`], [`pcr`], [`sealed`], [`token`], [`store`]: keys, PCRs, sealed
//!   secrets, PIN-protected tokens, the key store; [`tpm_facts`]: what the store
//!   remembers about the TPM (key algorithms, dictionary-attack counters) and the
//!   PINs, so that listings need no command.
//! - [`connection`], [`app`]: the connected TPM the CLI and the PKCS#11 module
//!   share (pinned SRK, salted session, loaded keys, kept across operations), and
//!   the CLI's commands.
//! - [`progress`]: the slow steps (RSA key generation, a busy TPM) a front end may
//!   show while they run.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod cert;
pub mod connection;
pub mod crypto;
pub mod error;
pub mod files;
mod holders;
pub mod info;
pub mod keys;
pub mod pcr;
pub mod pkcs11;
pub mod progress;
pub mod random;
pub mod sealed;
pub mod session;
pub mod settings;
pub mod store;
pub mod tcti;
pub mod token;
pub mod tpm;
pub mod tpm_facts;
pub mod transport;
pub mod x509;

pub use error::{Error, Result};
pub use keys::srk::Srk;
pub use pcr::PcrSelection;
pub use sealed::SealedSecret;
pub use tcti::Tcti;
pub use tpm::{Auth, Tpm};
pub use tpm_commands;
