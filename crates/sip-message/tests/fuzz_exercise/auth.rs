//! Exercise for the `digest` fuzz target: parses the input as credentials and
//! as a challenge, touches every field, and checks that a parsed Digest
//! challenge that can be written back parses to the same value.

use sip_message::auth::{Challenge, Credentials};

pub fn digest(data: &[u8]) {
    match Credentials::parse(data) {
        Ok(Credentials::Digest(credentials)) => {
            let _ = credentials.username.decode();
            std::hint::black_box(format!("{credentials:?}"));
        }
        Ok(other) => {
            std::hint::black_box(format!("{other:?}"));
        }
        Err(error) => check_error(&error, data),
    }
    match Challenge::parse(data) {
        Ok(Challenge::Digest(challenge)) => {
            if let Ok(value) = challenge.to_header_value() {
                let reparsed = Challenge::parse_str(&value)
                    .unwrap_or_else(|e| panic!("built challenge {value:?} does not parse: {e}"));
                assert_eq!(reparsed, Challenge::Digest(challenge), "{value:?}");
            }
        }
        Ok(other) => {
            std::hint::black_box(format!("{other:?}"));
        }
        Err(error) => check_error(&error, data),
    }
}

fn check_error(error: &sip_message::auth::AuthError, data: &[u8]) {
    assert!(
        error.offset() <= data.len(),
        "{error} beyond {} bytes",
        data.len()
    );
    std::hint::black_box(error.to_string());
}
