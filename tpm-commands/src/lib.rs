//! TPM 2.0 wire format: types, constants, commands and responses (TPM 2.0 Library
//! spec, Part 2 "Structures" and Part 3 "Commands").
//!
//! Pure data: no I/O, no crypto, no `unsafe`. Unmarshalling is total: every input
//! gives a value or an [`codec::UnmarshalError`] naming the type and byte offset;
//! nothing panics and nothing is allocated beyond what the input can hold.
//!
//! Mapping rules:
//! - `TPM_*` constants are open enums ([`constants::TpmAlgId`] …) that keep unknown values.
//! - `TPMA_*` are `bitflags` types that keep unknown bits.
//! - `TPM2B_*` check the spec maximum on read and construction; secret ones zeroize.
//! - `TPMU_*` unions are Rust enums; the selector is derived from the variant when
//!   writing, so the two cannot disagree.
//! - Commands are declared once in [`commands`]; see that module.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

#[macro_use]
mod macros;
pub mod attributes;
pub mod buffers;
pub mod codec;
#[macro_use]
pub mod commands;
pub mod constants;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod rc;
pub mod structures;

pub use codec::{Marshal, Reader, Unmarshal, UnmarshalError, Writer};
