//! Replaying a fuzz target's corpus as a test: every input the fuzzer kept
//! (`fuzz/corpus/<target>/`) and every input that once failed (`fuzz/regressions/<target>/`)
//! is run again on each test run, in seconds, without the fuzzer.

use std::path::Path;

/// Longest error message a fuzzed request may draw: caller input is quoted, never echoed whole.
pub const MAX_ERROR: usize = 1024;

/// Fails the fuzz target when a request drew an error message longer than [`MAX_ERROR`].
pub fn assert_short_error(what: &str, message: &str) {
    assert!(
        message.len() <= MAX_ERROR,
        "{what}: a {} byte error: {}…",
        message.len(),
        &message[..message.floor_char_boundary(200)]
    );
}

/// Runs `target` on every kept input of fuzz target `name` (`fuzz/corpus/<name>/` and
/// `fuzz/regressions/<name>/` of the workspace holding `crate_dir`, a service crate's folder);
/// panics naming the first input it fails on, or if there is no input at all.
pub fn replay(crate_dir: &str, name: &str, target: fn(&[u8])) {
    let fuzz = Path::new(crate_dir).join("../../fuzz");
    let mut inputs = 0;
    for folder in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(folder).join(name)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable corpus folder").path();
            let data = std::fs::read(&path).expect("a readable corpus file");
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{} fails {name}", path.display());
            inputs += 1;
        }
    }
    assert!(inputs > 0, "no corpus for {name} under {}", fuzz.display());
}
