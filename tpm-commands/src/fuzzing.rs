//! The property the fuzz targets check, kept in the library so that plain
//! `cargo test` replays the committed corpus through the same code.

use crate::codec::{Reader, Writer};
use crate::commands::{command_info, AnyResponse, COMMANDS};
use crate::constants::TpmCc;
use crate::frame::parse_response;

/// Parses `data[1..]` as the response to command code `0x100 | data[0]` (every
/// TPM 2.0 command code is 0x11F..=0x19F, so one byte names it; other values pick
/// from the table by index). Whatever the bytes, this must not panic; and when a response
/// parses, re-marshalling its handle and parameter areas must give back exactly the
/// bytes that were read.
///
/// Returns true when the frame parsed all the way to typed values.
pub fn check_response_frame(data: &[u8]) -> bool {
    let Some((&pick, frame)) = data.split_first() else {
        return false;
    };
    let Some(info) = command_info(TpmCc(0x100 | u32::from(pick)))
        .or_else(|| COMMANDS.get(usize::from(pick) % COMMANDS.len()))
    else {
        return false;
    };
    let Ok(parsed) = parse_response(frame, info.response_handles) else {
        return false;
    };
    if parsed.rc != 0 {
        return false;
    }
    let mut hr = Reader::new(parsed.handles);
    let mut pr = Reader::new(parsed.params);
    match AnyResponse::parse(info.cc, &mut hr, &mut pr) {
        Ok(Some(rsp)) => {
            let mut h = Writer::new();
            rsp.marshal_handles(&mut h);
            let mut p = Writer::new();
            rsp.marshal_params(&mut p);
            let (h, p) = (h.finish(), p.finish());
            assert_eq!(
                h.as_deref().ok(),
                Some(parsed.handles),
                "handle area does not round-trip"
            );
            assert_eq!(
                p.as_deref().ok(),
                Some(parsed.params),
                "parameter area does not round-trip"
            );
            true
        }
        _ => false,
    }
}
