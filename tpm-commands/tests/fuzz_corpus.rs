//! Replays the committed fuzz corpus (tpm-commands/fuzz/corpus, minimized with
//! `cargo fuzz cmin`) and the seeds (tpm-commands/fuzz/seeds: real swtpm responses)
//! through the same check the fuzz target runs, so plain `cargo test` keeps every
//! input found.

use std::path::Path;

#[test]
fn response_frame_corpus_replays() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/response_frame");
    let mut files = 0;
    let mut parsed = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read corpus file");
        files += 1;
        if tpm_commands::fuzzing::check_response_frame(&data) {
            parsed += 1;
        }
    }
    assert!(files >= 18, "corpus has only {files} files");
    // The seeds are real swtpm responses: the successful ones must parse.
    assert!(
        parsed >= 15,
        "only {parsed} of {files} corpus inputs parsed"
    );
}

#[test]
fn seeds_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/response_frame");
    let (mut seeds, mut ok) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("seed-") {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        // Byte 0 picks the command; the response code sits at bytes 7..11.
        let rc = u32::from_be_bytes([data[7], data[8], data[9], data[10]]);
        seeds += 1;
        if rc == 0 {
            assert!(
                tpm_commands::fuzzing::check_response_frame(&data),
                "{name} did not parse"
            );
            ok += 1;
        }
    }
    assert_eq!(seeds, 18, "seed files");
    assert!(ok >= 17, "{ok} successful seeds");
}
