//! API tokens for the admin API: random bearer tokens of which only a hash is stored.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

use crate::Secret;
use crate::random::{RandomError, SystemRandom, random_bytes};

/// The prefix of every token, so a leaked one is recognisable (and greppable in logs).
pub const TOKEN_PREFIX: &str = "tm_";

/// A newly made token: the value to hand out once, and the hash to store.
#[derive(Debug)]
pub struct NewApiToken {
    /// The bearer token, `tm_` and 43 URL-safe characters. Shown once, never stored.
    pub token: Secret<String>,
    /// Its hash, as stored.
    pub hash: String,
}

/// Makes a new random token (256 bits).
///
/// # Errors
///
/// [`RandomError`] when the operating system's random generator fails.
pub fn generate_api_token() -> Result<NewApiToken, RandomError> {
    let bytes = random_bytes::<32>(&mut SystemRandom)?;
    let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_api_token(&token);
    Ok(NewApiToken {
        token: Secret::new(token),
        hash,
    })
}

/// The stored form of a token: lowercase hex SHA-256. Tokens carry 256 random bits, so a fast
/// hash is enough: there is nothing to brute-force.
pub fn hash_api_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hash_to_what_is_stored() {
        let first = generate_api_token().unwrap();
        let second = generate_api_token().unwrap();
        assert_ne!(first.token, second.token);
        assert!(first.token.expose().starts_with("tm_"));
        assert_eq!(first.token.expose().len(), 3 + 43);
        assert_eq!(first.hash, hash_api_token(first.token.expose()));
        assert_eq!(first.hash.len(), 64);
        assert!(!format!("{first:?}").contains(first.token.expose().as_str()));
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_api_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
