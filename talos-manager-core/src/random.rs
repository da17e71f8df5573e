//! The one random source of the crate: key material, secrets bundles, API tokens, request and
//! worker ids all draw from [`SystemRandom`] (the operating system's generator through aws-lc).
//!
//! A failing generator is an error ([`RandomError`]), never a silent fallback: filling zeros
//! would hand out predictable keys and tokens. Code that makes key material takes a
//! `&mut dyn RandomSource`, so tests can inject a deterministic or a failing source.

/// The random generator failed, so no key, token or id was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomError;

/// A source of cryptographically secure random bytes.
pub trait RandomSource {
    /// Fills `dest` with random bytes.
    ///
    /// # Errors
    ///
    /// [`RandomError`] when the source cannot produce bytes; `dest` must then not be used.
    fn fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), RandomError>;
}

/// The operating system's random generator (through aws-lc).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRandom;

impl RandomSource for SystemRandom {
    fn fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        // aws-lc's generator only fails when the OS has no entropy source at all; then nothing
        // secret can be made, and the caller must say so.
        aws_lc_rs::rand::fill(dest).map_err(|_| RandomError)
    }
}

/// `N` bytes from `rng`.
///
/// # Errors
///
/// [`RandomError`] when `rng` fails.
pub fn random_bytes<const N: usize>(rng: &mut dyn RandomSource) -> Result<[u8; N], RandomError> {
    let mut bytes = [0u8; N];
    rng.fill_bytes(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_source_gives_distinct_bytes() {
        let a = random_bytes::<16>(&mut SystemRandom).unwrap();
        let b = random_bytes::<16>(&mut SystemRandom).unwrap();
        assert_ne!(a, b);
    }
}
