//! [`Issue`]: one problem with user input and where it is, so that every problem is reported
//! at once rather than the first only.

/// One problem with user input.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Issue {
    /// Where: a field (`labels`) or a path into a document (`machine.network.nameservers`).
    pub path: String,
    /// What is wrong, lowercase, without a full stop.
    pub message: String,
}

impl Issue {
    /// An issue at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Issue {
        Issue {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Input that was refused, with every issue found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {}", .issues.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ValidationError {
    /// What was validated (`label and taint rule`, `config`).
    pub what: &'static str,
    /// Every issue, in the order found.
    pub issues: Vec<Issue>,
}

impl ValidationError {
    /// `Ok(())` when `issues` is empty, else the error.
    pub fn check(what: &'static str, issues: Vec<Issue>) -> Result<(), ValidationError> {
        if issues.is_empty() {
            Ok(())
        } else {
            Err(ValidationError { what, issues })
        }
    }
}
