//! Fuzzes response parsing: any bytes, any command code of the table.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tpm_commands::fuzzing::check_response_frame(data);
});
