//! Every frame recorded from the reference stack (tpm2-tools 5.4 on swtpm 0.7.1,
//! vendor-testvectors/recorded/*.txt, made by vendor-testvectors/record.sh) parses
//! with our codec, and re-marshals to the same bytes: whole frames for commands
//! without sessions, the handle and parameter areas (and the session area) for
//! commands with sessions, handle and parameter areas for responses.

use std::collections::BTreeMap;
use std::path::Path;

use tpm_commands::attributes::TpmaSession;
use tpm_commands::codec::{Marshal, Reader, Writer};
use tpm_commands::commands::{command_info, AnyCommand, AnyResponse};
use tpm_commands::constants::TpmCc;
use tpm_commands::frame::{build_command, parse_command, parse_response};

fn pairs() -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("vendor-testvectors/recorded");
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("recorded dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&f).unwrap();
        let mut cmd: Option<Vec<u8>> = None;
        for line in text.lines() {
            if let Some(h) = line.strip_prefix("> ") {
                cmd = Some(hex::decode(h).expect("hex"));
            } else if let Some(h) = line.strip_prefix("< ") {
                let c = cmd.take().expect("response without command");
                out.push((name.clone(), c, hex::decode(h).expect("hex")));
            }
        }
    }
    out
}

#[test]
fn every_recorded_frame_parses_and_round_trips() {
    let pairs = pairs();
    assert!(
        pairs.len() >= 250,
        "only {} recorded frame pairs",
        pairs.len()
    );
    let mut unknown = BTreeMap::new();
    let mut per_file: BTreeMap<String, usize> = BTreeMap::new();
    let (mut exact, mut with_sessions, mut encrypted_cmd, mut encrypted_rsp, mut errors) =
        (0, 0, 0, 0, 0);
    for (file, cmd, rsp) in &pairs {
        let cc = TpmCc(u32::from_be_bytes(cmd[6..10].try_into().unwrap()));
        let Some(info) = command_info(cc) else {
            *unknown.entry(format!("{cc} ({:#x})", cc.0)).or_insert(0) += 1;
            continue;
        };
        *per_file.entry(file.clone()).or_default() += 1;

        // Command.
        let parsed = parse_command(cmd, info.handle_auth.len())
            .unwrap_or_else(|e| panic!("{file}: {cc} command: {e}"));
        let decrypting = parsed
            .sessions
            .iter()
            .any(|s| s.session_attributes.contains(TpmaSession::DECRYPT));
        let handle_bytes: Vec<u8> = parsed
            .handles
            .iter()
            .flat_map(|h| h.0.to_be_bytes())
            .collect();
        if decrypting {
            // The first parameter is ciphertext: only its framing can be checked.
            encrypted_cmd += 1;
            let size = u16::from_be_bytes([parsed.params[0], parsed.params[1]]) as usize;
            assert!(
                2 + size <= parsed.params.len(),
                "{file}: {cc} encrypted parameter overruns"
            );
        } else {
            let any = AnyCommand::parse(
                cc,
                &mut Reader::new(&handle_bytes),
                &mut Reader::new(parsed.params),
            )
            .unwrap_or_else(|e| panic!("{file}: {cc} command areas: {e}"))
            .expect("in table");
            let mut w = Writer::new();
            any.marshal_params(&mut w);
            assert_eq!(
                w.finish().unwrap(),
                parsed.params,
                "{file}: {cc} parameters re-marshal"
            );
            assert_eq!(any.handles(), parsed.handles);
            if parsed.sessions.is_empty() {
                let rebuilt = build_command(cc, &any.handles(), &[], parsed.params).unwrap();
                assert_eq!(&rebuilt, cmd, "{file}: {cc} whole frame re-marshal");
                exact += 1;
            }
        }
        if !parsed.sessions.is_empty() {
            with_sessions += 1;
            let rebuilt =
                build_command(cc, &parsed.handles, &parsed.sessions, parsed.params).unwrap();
            assert_eq!(&rebuilt, cmd, "{file}: {cc} frame with sessions re-marshal");
        }

        // Response.
        let r = parse_response(rsp, info.response_handles)
            .unwrap_or_else(|e| panic!("{file}: {cc} response: {e}"));
        if r.rc != 0 {
            assert_eq!(rsp.len(), 10, "{file}: error responses are bare headers");
            errors += 1;
            continue;
        }
        if r.sessions
            .iter()
            .any(|s| s.session_attributes.contains(TpmaSession::ENCRYPT))
        {
            encrypted_rsp += 1;
            continue;
        }
        let any = AnyResponse::parse(cc, &mut Reader::new(r.handles), &mut Reader::new(r.params))
            .unwrap_or_else(|e| panic!("{file}: {cc} response areas: {e}"))
            .expect("in table");
        let (mut h, mut p) = (Writer::new(), Writer::new());
        any.marshal_handles(&mut h);
        any.marshal_params(&mut p);
        assert_eq!(
            h.finish().unwrap(),
            r.handles,
            "{file}: {cc} response handles re-marshal"
        );
        assert_eq!(
            p.finish().unwrap(),
            r.params,
            "{file}: {cc} response parameters re-marshal"
        );
        for s in &r.sessions {
            let _ = s.marshaled_len();
        }
    }
    assert!(
        unknown.is_empty(),
        "command codes recorded but not in the table: {unknown:?}"
    );
    eprintln!("per file: {per_file:?}; whole frames byte-exact: {exact}; with sessions: {with_sessions}; encrypted command params: {encrypted_cmd}; encrypted responses: {encrypted_rsp}; error responses: {errors}");
    assert!(exact >= 100, "only {exact} frames compared whole");
}
