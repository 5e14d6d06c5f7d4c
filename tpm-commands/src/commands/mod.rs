//! TPM 2.0 commands (Part 3), each declared once in a `tpm_commands!` table.
//!
//! From one declaration come: the command struct (handles and parameters as named
//! fields) and its response struct; marshalling and unmarshalling of the handle area
//! and the parameter area separately (cpHash and rpHash need the split, Part 1
//! §18.7); which handles carry an authorization; whether the first command and
//! response parameter is a TPM2B (parameter encryption needs that, Part 1 §21.1);
//! and the [`AnyCommand`] / [`AnyResponse`] dispatch by command code used to parse
//! recorded frames.

use crate::codec::{Marshal, Reader, Unmarshal, UnmarshalError, Writer};
use crate::constants::{TpmCc, TpmHandle};

/// A TPM command: a handle area and a parameter area (Part 1 §18.2).
pub trait Command: Sized {
    /// The command code.
    const CC: TpmCc;
    /// The spec name, e.g. `"TPM2_Sign"`.
    const NAME: &'static str;
    /// For each handle of the handle area, in order: does it need an authorization
    /// session? (Authorized handles come first, Part 1 §18.7.)
    const HANDLE_AUTH: &'static [bool];
    /// True when the first parameter is a TPM2B, so a `decrypt` session may
    /// encrypt it (Part 1 §21.1).
    const DECRYPTABLE: bool;
    /// The response type.
    type Response: Response;

    /// The handle area.
    fn handles(&self) -> Vec<TpmHandle>;
    /// Appends the parameter area.
    fn marshal_params(&self, w: &mut Writer);
    /// Reads a command from its handle area and its parameter area; each reader must
    /// be consumed exactly.
    ///
    /// # Errors
    /// Malformed or truncated areas.
    fn unmarshal_areas(
        handles: &mut Reader<'_>,
        params: &mut Reader<'_>,
    ) -> Result<Self, UnmarshalError>;

    /// The number of handles that need an authorization.
    fn auth_count() -> usize {
        Self::HANDLE_AUTH.iter().filter(|a| **a).count()
    }

    /// The parameter area as bytes.
    ///
    /// # Errors
    /// A buffer too large for its size field.
    fn params_bytes(&self) -> Result<Vec<u8>, crate::codec::MarshalError> {
        let mut w = Writer::new();
        self.marshal_params(&mut w);
        w.finish()
    }
}

/// A TPM response: a handle area and a parameter area (Part 1 §18.3).
pub trait Response: Sized {
    /// The number of handles in the response handle area.
    const HANDLE_COUNT: usize;
    /// True when the first response parameter is a TPM2B, so an `encrypt` session
    /// may encrypt it (Part 1 §21.1).
    const ENCRYPTABLE: bool;

    /// Reads the response from its handle and parameter areas; each reader must be
    /// consumed exactly.
    ///
    /// # Errors
    /// Malformed or truncated areas.
    fn unmarshal_areas(
        handles: &mut Reader<'_>,
        params: &mut Reader<'_>,
    ) -> Result<Self, UnmarshalError>;
    /// Appends the handle area.
    fn marshal_handles(&self, w: &mut Writer);
    /// Appends the parameter area.
    fn marshal_params(&self, w: &mut Writer);
}

macro_rules! first_is_tpm2b {
    () => {
        false
    };
    ($t:ty $(, $rest:ty)*) => {
        <$t as $crate::codec::Marshal>::IS_TPM2B
    };
}

macro_rules! handle_is_auth {
    (auth) => {
        true
    };
    (noauth) => {
        false
    };
}

/// Declares commands. Each entry:
///
/// ```text
/// /// docs
/// Name = CC_CONST, "TPM2_Name" {
///     handles { h1: auth, h2: noauth }
///     params { p1: Type1, p2: Type2 }
///     response_handles { rh: TpmHandle }
///     response { r1: RType1 }
/// }
/// ```
macro_rules! tpm_commands {
    ($(
        $(#[$meta:meta])*
        $name:ident / $resp:ident = $cc:ident, $spec:literal {
            handles { $($h:ident : $hauth:ident),* $(,)? }
            params { $($p:ident : $pt:ty),* $(,)? }
            response_handles { $($rh:ident),* $(,)? }
            response { $($r:ident : $rt:ty),* $(,)? }
        }
    )*) => {
        $(
            $(#[$meta])*
            #[doc(alias = $spec)]
            #[derive(Clone, Debug, PartialEq, Eq)]
            pub struct $name {
                $( #[allow(missing_docs)] pub $h: $crate::constants::TpmHandle, )*
                $( #[allow(missing_docs)] pub $p: $pt, )*
            }

            #[doc = concat!("The response to ", $spec, ".")]
            #[derive(Clone, Debug, PartialEq, Eq)]
            pub struct $resp {
                $( #[allow(missing_docs)] pub $rh: $crate::constants::TpmHandle, )*
                $( #[allow(missing_docs)] pub $r: $rt, )*
            }

            impl $crate::commands::Command for $name {
                const CC: $crate::constants::TpmCc = $crate::constants::TpmCc::$cc;
                const NAME: &'static str = $spec;
                const HANDLE_AUTH: &'static [bool] = &[$(handle_is_auth!($hauth)),*];
                const DECRYPTABLE: bool = first_is_tpm2b!($($pt),*);
                type Response = $resp;

                fn handles(&self) -> Vec<$crate::constants::TpmHandle> {
                    vec![$(self.$h),*]
                }

                #[allow(unused_variables)]
                fn marshal_params(&self, w: &mut $crate::codec::Writer) {
                    $( $crate::codec::Marshal::marshal(&self.$p, w); )*
                }

                #[allow(unused_variables)]
                fn unmarshal_areas(
                    handles: &mut $crate::codec::Reader<'_>,
                    params: &mut $crate::codec::Reader<'_>,
                ) -> Result<Self, $crate::codec::UnmarshalError> {
                    let v = $name {
                        $( $h: <$crate::constants::TpmHandle as $crate::codec::Unmarshal>::unmarshal(handles)?, )*
                        $( $p: <$pt as $crate::codec::Unmarshal>::unmarshal(params)?, )*
                    };
                    handles.finish($spec)?;
                    params.finish($spec)?;
                    Ok(v)
                }
            }

            impl $crate::commands::Response for $resp {
                const HANDLE_COUNT: usize = <[&str]>::len(&[$(stringify!($rh)),*]);
                const ENCRYPTABLE: bool = first_is_tpm2b!($($rt),*);

                #[allow(unused_variables)]
                fn unmarshal_areas(
                    handles: &mut $crate::codec::Reader<'_>,
                    params: &mut $crate::codec::Reader<'_>,
                ) -> Result<Self, $crate::codec::UnmarshalError> {
                    let v = $resp {
                        $( $rh: <$crate::constants::TpmHandle as $crate::codec::Unmarshal>::unmarshal(handles)?, )*
                        $( $r: <$rt as $crate::codec::Unmarshal>::unmarshal(params)?, )*
                    };
                    handles.finish($spec)?;
                    params.finish($spec)?;
                    Ok(v)
                }

                #[allow(unused_variables)]
                fn marshal_handles(&self, w: &mut $crate::codec::Writer) {
                    $( $crate::codec::Marshal::marshal(&self.$rh, w); )*
                }

                #[allow(unused_variables)]
                fn marshal_params(&self, w: &mut $crate::codec::Writer) {
                    $( $crate::codec::Marshal::marshal(&self.$r, w); )*
                }
            }
        )*

        /// Any command of the table, for parsing recorded or received frames.
        #[derive(Clone, Debug, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub enum AnyCommand {
            $( $name($name), )*
        }

        /// Any response of the table.
        #[derive(Clone, Debug, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub enum AnyResponse {
            $( $name($resp), )*
        }

        /// Facts about a command code that the wire does not carry.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct CommandInfo {
            /// The command code.
            pub cc: $crate::constants::TpmCc,
            /// The spec name.
            pub name: &'static str,
            /// Authorization need of each command handle.
            pub handle_auth: &'static [bool],
            /// Number of response handles.
            pub response_handles: usize,
            /// First command parameter is a TPM2B.
            pub decryptable: bool,
            /// First response parameter is a TPM2B.
            pub encryptable: bool,
        }

        /// Every command this crate declares.
        pub const COMMANDS: &[CommandInfo] = &[
            $( CommandInfo {
                cc: <$name as $crate::commands::Command>::CC,
                name: $spec,
                handle_auth: <$name as $crate::commands::Command>::HANDLE_AUTH,
                response_handles: <$resp as $crate::commands::Response>::HANDLE_COUNT,
                decryptable: <$name as $crate::commands::Command>::DECRYPTABLE,
                encryptable: <$resp as $crate::commands::Response>::ENCRYPTABLE,
            }, )*
        ];

        impl AnyCommand {
            /// Parses the handle and parameter areas of command `cc`. `Ok(None)` for a
            /// command code not in the table.
            ///
            /// # Errors
            /// Malformed areas.
            pub fn parse(
                cc: $crate::constants::TpmCc,
                handles: &mut $crate::codec::Reader<'_>,
                params: &mut $crate::codec::Reader<'_>,
            ) -> Result<Option<Self>, $crate::codec::UnmarshalError> {
                $( if cc == <$name as $crate::commands::Command>::CC {
                    return <$name as $crate::commands::Command>::unmarshal_areas(handles, params)
                        .map(|c| Some(AnyCommand::$name(c)));
                } )*
                Ok(None)
            }

            /// The command code.
            pub fn cc(&self) -> $crate::constants::TpmCc {
                match self {
                    $( AnyCommand::$name(_) => <$name as $crate::commands::Command>::CC, )*
                }
            }

            /// The handle area.
            pub fn handles(&self) -> Vec<$crate::constants::TpmHandle> {
                match self {
                    $( AnyCommand::$name(c) => $crate::commands::Command::handles(c), )*
                }
            }

            /// Appends the parameter area.
            pub fn marshal_params(&self, w: &mut $crate::codec::Writer) {
                match self {
                    $( AnyCommand::$name(c) => $crate::commands::Command::marshal_params(c, w), )*
                }
            }
        }

        impl AnyResponse {
            /// Parses the handle and parameter areas of the response to `cc`.
            /// `Ok(None)` for a command code not in the table.
            ///
            /// # Errors
            /// Malformed areas.
            pub fn parse(
                cc: $crate::constants::TpmCc,
                handles: &mut $crate::codec::Reader<'_>,
                params: &mut $crate::codec::Reader<'_>,
            ) -> Result<Option<Self>, $crate::codec::UnmarshalError> {
                $( if cc == <$name as $crate::commands::Command>::CC {
                    return <$resp as $crate::commands::Response>::unmarshal_areas(handles, params)
                        .map(|c| Some(AnyResponse::$name(c)));
                } )*
                Ok(None)
            }

            /// Appends the handle area.
            pub fn marshal_handles(&self, w: &mut $crate::codec::Writer) {
                match self {
                    $( AnyResponse::$name(c) => $crate::commands::Response::marshal_handles(c, w), )*
                }
            }

            /// Appends the parameter area.
            pub fn marshal_params(&self, w: &mut $crate::codec::Writer) {
                match self {
                    $( AnyResponse::$name(c) => $crate::commands::Response::marshal_params(c, w), )*
                }
            }
        }
    };
}

/// Looks up what the table knows of `cc`.
pub fn command_info(cc: TpmCc) -> Option<&'static CommandInfo> {
    COMMANDS.iter().find(|c| c.cc == cc)
}

// Silence "unused" for the trait imports used only inside macro expansions.
#[allow(dead_code)]
fn _uses(_: &dyn Fn(&mut Reader<'_>) -> Result<u8, UnmarshalError>) {
    let _ = <u8 as Marshal>::IS_TPM2B;
    let _ = <u8 as Unmarshal>::unmarshal;
}

mod table;
pub use table::*;
