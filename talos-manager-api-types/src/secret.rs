//! [`Secret<T>`]: a value that never shows itself in logs or error messages.

use std::fmt;

/// A value that must not be logged or returned unasked: cluster secrets bundles, provider
/// credentials, SSH private keys, tokens and rendered machine configs.
///
/// `Debug` and `Display` print `<redacted>`; the value is reached only through
/// [`Secret::expose`], so every place that reveals a secret is visible in review.
///
/// ```
/// use talos_manager_api_types::Secret;
///
/// let password = Secret::new(String::from("hunter2"));
/// assert_eq!(format!("{password:?} {password}"), "<redacted> <redacted>");
/// assert_eq!(password.expose(), "hunter2");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// Borrows the secret value. Call this only where the value is needed in clear.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_of_a_struct_holding_a_secret_hides_it() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Credentials {
            user: String,
            password: Secret<String>,
        }
        let credentials = Credentials {
            user: "robot-user".into(),
            password: Secret::new("s3cr3t-value".into()),
        };
        let printed = format!("{credentials:?} {credentials:#?}");
        assert!(printed.contains("robot-user"));
        assert!(!printed.contains("s3cr3t-value"), "{printed}");
        assert!(printed.contains("<redacted>"));
    }
}
