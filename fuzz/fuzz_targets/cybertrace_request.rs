#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdr_enrichment::fuzzing::cybertrace_request(data));
