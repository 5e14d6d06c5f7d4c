//! Public areas: Names (Part 1 §16) and the key a session salt is encrypted to;
//! both live with the layers that use them, [`crate::crypto::name`] and
//! [`crate::session::salt`], and are named here too for the key code.

pub use crate::crypto::name::object_name;
pub use crate::session::salt::SaltKey;
