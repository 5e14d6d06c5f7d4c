//! Command and response frames (Part 1 §18): the 10-byte header, the handle area,
//! the authorization area and the parameter area. Pure byte work, no crypto.

use crate::attributes::TpmaSession;
use crate::buffers::{Tpm2bAuth, Tpm2bNonce, MAX_FRAME};
use crate::codec::{ErrorKind, Marshal, MarshalError, Reader, Unmarshal, UnmarshalError, Writer};
use crate::constants::{TpmCc, TpmHandle, TpmSt};

/// MAX_SESSION_NUM (Part 2 §5.1 / reference implementation): at most three sessions.
pub const MAX_SESSIONS: usize = 3;
/// Size of the command and response header.
pub const HEADER_SIZE: usize = 10;

tpm_struct! {
    /// TPMS_AUTH_COMMAND (Part 2 §10.13.2): one session's entry in a command.
    pub struct TpmsAuthCommand as "TPMS_AUTH_COMMAND" {
        pub session_handle: TpmHandle,
        pub nonce: Tpm2bNonce,
        pub session_attributes: TpmaSession,
        pub hmac: Tpm2bAuth,
    }
}

tpm_struct! {
    /// TPMS_AUTH_RESPONSE (Part 2 §10.13.3): one session's entry in a response.
    pub struct TpmsAuthResponse as "TPMS_AUTH_RESPONSE" {
        pub nonce: Tpm2bNonce,
        pub session_attributes: TpmaSession,
        pub hmac: Tpm2bAuth,
    }
}

/// Builds a command frame. With no sessions the tag is TPM_ST_NO_SESSIONS and there
/// is no authorization area.
///
/// # Errors
/// A frame larger than a `u32` size or a session field over its maximum.
pub fn build_command(
    cc: TpmCc,
    handles: &[TpmHandle],
    sessions: &[TpmsAuthCommand],
    params: &[u8],
) -> Result<Vec<u8>, MarshalError> {
    let mut w = Writer::new();
    let tag = if sessions.is_empty() {
        TpmSt::NO_SESSIONS
    } else {
        TpmSt::SESSIONS
    };
    tag.marshal(&mut w);
    // commandSize counts the whole frame, including the tag before it.
    let mut body = Writer::new();
    cc.marshal(&mut body);
    for h in handles {
        h.marshal(&mut body);
    }
    if !sessions.is_empty() {
        body.sized_u32(|w| {
            for s in sessions {
                s.marshal(w);
            }
        });
    }
    body.bytes(params);
    let body = body.finish()?;
    let size = body.len() + 6;
    let size32 = u32::try_from(size).map_err(|_| MarshalError {
        size,
        max: u32::MAX as usize,
    })?;
    w.u32(size32);
    w.bytes(&body);
    w.finish()
}

/// The 10-byte header of a command or response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// TPM_ST_NO_SESSIONS or TPM_ST_SESSIONS (a TPM 1.2 tag otherwise).
    pub tag: TpmSt,
    /// The size of the whole frame.
    pub size: u32,
    /// The command code (commands) or response code (responses).
    pub code: u32,
}

impl Header {
    /// Reads a header from the first 10 bytes of `frame`.
    ///
    /// # Errors
    /// Fewer than 10 bytes.
    pub fn parse(frame: &[u8]) -> Result<Self, UnmarshalError> {
        let mut r = Reader::new(frame);
        Ok(Header {
            tag: TpmSt::unmarshal(&mut r)?,
            size: r.u32("header")?,
            code: r.u32("header")?,
        })
    }
}

fn check_frame<'a>(
    frame: &'a [u8],
    ty: &'static str,
) -> Result<(Header, Reader<'a>), UnmarshalError> {
    let mut r = Reader::new(frame);
    if frame.len() > MAX_FRAME {
        return Err(r.error(
            ty,
            ErrorKind::TooLarge {
                size: frame.len(),
                max: MAX_FRAME,
            },
        ));
    }
    let header = Header::parse(frame)?;
    r.take(HEADER_SIZE, ty)?;
    if header.size as usize != frame.len() {
        return Err(UnmarshalError {
            kind: ErrorKind::BadValue { value: header.size },
            offset: 2,
            ty,
        });
    }
    if header.tag != TpmSt::NO_SESSIONS && header.tag != TpmSt::SESSIONS {
        return Err(UnmarshalError {
            kind: ErrorKind::BadSelector {
                value: u32::from(header.tag.0),
            },
            offset: 0,
            ty,
        });
    }
    Ok((header, r))
}

/// A parsed command frame, areas split but not interpreted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandFrame<'a> {
    /// The tag.
    pub tag: TpmSt,
    /// The command code.
    pub cc: TpmCc,
    /// The handle area.
    pub handles: Vec<TpmHandle>,
    /// The sessions (empty for TPM_ST_NO_SESSIONS).
    pub sessions: Vec<TpmsAuthCommand>,
    /// The parameter area.
    pub params: &'a [u8],
    /// Absolute offset of the parameter area in the frame.
    pub params_offset: usize,
}

/// Splits a command frame, given the number of handles its command code takes.
///
/// # Errors
/// Bad header, sizes that overrun, more than three sessions.
pub fn parse_command(
    frame: &[u8],
    handle_count: usize,
) -> Result<CommandFrame<'_>, UnmarshalError> {
    let (header, mut r) = check_frame(frame, "command frame")?;
    let mut handles = Vec::with_capacity(handle_count.min(3));
    for _ in 0..handle_count {
        handles.push(TpmHandle::unmarshal(&mut r)?);
    }
    let mut sessions = Vec::new();
    if header.tag == TpmSt::SESSIONS {
        sessions = r.sized_u32(MAX_FRAME, "authorization area", |s| {
            let mut v = Vec::new();
            while s.remaining() > 0 {
                if v.len() == MAX_SESSIONS {
                    return Err(s.error(
                        "authorization area",
                        ErrorKind::TooLarge {
                            size: 4,
                            max: MAX_SESSIONS,
                        },
                    ));
                }
                v.push(TpmsAuthCommand::unmarshal(s)?);
            }
            Ok(v)
        })?;
        if sessions.is_empty() {
            return Err(r.error("authorization area", ErrorKind::BadValue { value: 0 }));
        }
    }
    let params_offset = r.offset();
    Ok(CommandFrame {
        tag: header.tag,
        cc: TpmCc(header.code),
        handles,
        sessions,
        params: r.rest(),
        params_offset,
    })
}

/// A parsed response frame, areas split but not interpreted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseFrame<'a> {
    /// The tag.
    pub tag: TpmSt,
    /// The response code; when non-zero, every area below is empty.
    pub rc: u32,
    /// The handle area bytes.
    pub handles: &'a [u8],
    /// The parameter area bytes.
    pub params: &'a [u8],
    /// Absolute offset of the parameter area in the frame.
    pub params_offset: usize,
    /// The session entries (empty for TPM_ST_NO_SESSIONS).
    pub sessions: Vec<TpmsAuthResponse>,
}

/// Splits a response frame, given the number of handles the command's response
/// carries. A non-zero response code must come in a bare 10-byte frame (Part 1 §18.4).
///
/// # Errors
/// Bad header, sizes that overrun or leave bytes over, more than three sessions.
pub fn parse_response(
    frame: &[u8],
    handle_count: usize,
) -> Result<ResponseFrame<'_>, UnmarshalError> {
    let (header, mut r) = check_frame(frame, "response frame")?;
    if header.code != 0 {
        r.finish("response frame")?;
        return Ok(ResponseFrame {
            tag: header.tag,
            rc: header.code,
            handles: &[],
            params: &[],
            params_offset: HEADER_SIZE,
            sessions: Vec::new(),
        });
    }
    let handles = r.take(handle_count * 4, "response handles")?;
    let (params, params_offset, sessions) = if header.tag == TpmSt::SESSIONS {
        let size_at = r.clone();
        let size = r.u32("parameterSize")? as usize;
        if size > r.remaining() {
            return Err(size_at.error(
                "parameterSize",
                ErrorKind::Truncated {
                    needed: size,
                    available: r.remaining(),
                },
            ));
        }
        let params_offset = r.offset();
        let params = r.take(size, "parameters")?;
        let mut sessions = Vec::new();
        while r.remaining() > 0 {
            if sessions.len() == MAX_SESSIONS {
                return Err(r.error(
                    "response sessions",
                    ErrorKind::TooLarge {
                        size: 4,
                        max: MAX_SESSIONS,
                    },
                ));
            }
            sessions.push(TpmsAuthResponse::unmarshal(&mut r)?);
        }
        (params, params_offset, sessions)
    } else {
        let params_offset = r.offset();
        (r.rest(), params_offset, Vec::new())
    };
    Ok(ResponseFrame {
        tag: header.tag,
        rc: 0,
        handles,
        params,
        params_offset,
        sessions,
    })
}

/// Builds a response frame (for tests, proxies and mock TPMs).
///
/// # Errors
/// A field over its maximum.
pub fn build_response(
    rc: u32,
    handles: &[u8],
    params: &[u8],
    sessions: &[TpmsAuthResponse],
) -> Result<Vec<u8>, MarshalError> {
    let mut body = Writer::new();
    body.u32(rc);
    if rc == 0 {
        body.bytes(handles);
        if sessions.is_empty() {
            body.bytes(params);
        } else {
            body.sized_u32(|w| w.bytes(params));
            for s in sessions {
                s.marshal(&mut body);
            }
        }
    }
    let body = body.finish()?;
    let tag = if rc == 0 && !sessions.is_empty() {
        TpmSt::SESSIONS
    } else {
        TpmSt::NO_SESSIONS
    };
    let mut w = Writer::new();
    tag.marshal(&mut w);
    w.u32((body.len() + 6) as u32);
    w.bytes(&body);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_random_frame_is_byte_exact() {
        // TPM2_GetRandom(16), as every TSS sends it.
        let f = build_command(TpmCc::GET_RANDOM, &[], &[], &[0x00, 0x10]).unwrap();
        assert_eq!(f, [0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x7b, 0x00, 0x10]);
        let p = parse_command(&f, 0).unwrap();
        assert_eq!(p.cc, TpmCc::GET_RANDOM);
        assert_eq!(p.params, &[0x00, 0x10]);
    }

    #[test]
    fn error_response_must_be_bare() {
        let ok = [0x80, 0x01, 0, 0, 0, 0x0a, 0, 0, 0x09, 0x8e];
        assert_eq!(parse_response(&ok, 1).unwrap().rc, 0x98e);
        let long = [0x80, 0x01, 0, 0, 0, 0x0b, 0, 0, 0x09, 0x8e, 0];
        assert!(parse_response(&long, 1).is_err());
    }

    #[test]
    fn size_mismatch_is_rejected() {
        let f = [0x80, 0x01, 0, 0, 0, 0x0b, 0, 0, 0, 0];
        assert!(parse_response(&f, 0).is_err());
    }

    #[test]
    fn parameter_size_overrun_is_rejected() {
        let f = [
            0x80, 0x02, 0, 0, 0, 0x0e, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
        ];
        assert!(parse_response(&f, 0).is_err());
    }
}
