//! Keys: standard templates, the storage root key (SRK), public-area conversions,
//! TSS2 key files.

pub mod decrypt;
pub mod import;
pub mod keyfile;
pub mod ops;
pub mod persist;
pub mod public;
pub mod rewrap;
pub mod signature;
pub mod srk;
pub mod sshpub;
pub mod templates;
pub mod tss2;
