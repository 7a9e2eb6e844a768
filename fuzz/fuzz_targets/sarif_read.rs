//! Any bytes as a SARIF report: read or refused with a reason, never a panic or a hang; findings
//! stay in the checkout, threads stay inert and end with herald's marker.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("findings_common.rs");

fuzz_target!(|data: &[u8]| check(data, Format::Sarif));
