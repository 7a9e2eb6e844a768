//! Any bytes as the contents of `HERALD_TOKEN_FILE`: a token or one line of refusal, never a panic,
//! and a refusal never quotes what the file holds.
#![no_main]

use herald::gitlab::Token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Token::from_file_contents(data) {
        Ok(token) => assert_eq!(format!("{token} {token:?}"), "[MASKED] Token([MASKED])"),
        Err(why) => {
            assert!(!why.contains('\n'), "one line: {why}");
            let text = String::from_utf8_lossy(data);
            let word = text.trim();
            // Words of the fixed messages themselves aside, the contents never appear in them.
            if word.len() >= 12 && !word.contains(char::is_whitespace) {
                assert!(!why.contains(word), "quoted the contents: {why}");
            }
        }
    }
});
