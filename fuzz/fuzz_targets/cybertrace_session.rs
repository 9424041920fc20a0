#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdr_threatintel::fuzzing::cybertrace_session(data));
