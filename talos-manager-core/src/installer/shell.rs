//! [`RemoteShell`]: running a command on the rescue system, whatever carries it (SSH, or a fake).

use std::time::Duration;

use async_trait::async_trait;

/// Which output stream a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The command's standard output.
    Stdout,
    /// The command's standard error.
    Stderr,
}

/// How a remote command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The command exited with this status.
    Status(u32),
    /// The command was killed by this signal (its name, such as `KILL`).
    Signal(String),
    /// The connection closed before the command reported how it ended (for example `reboot`).
    Disconnected,
}

impl Exit {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        *self == Exit::Status(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Status(status) => write!(f, "exit status {status}"),
            Exit::Signal(signal) => write!(f, "signal {signal}"),
            Exit::Disconnected => f.write_str("connection closed before an exit status"),
        }
    }
}

/// A command's whole output, for short commands (see [`capture`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// Standard output, lossily decoded as UTF-8.
    pub stdout: String,
    /// Standard error, lossily decoded as UTF-8.
    pub stderr: String,
    /// How the command ended.
    pub exit: Exit,
}

/// Why a command could not be run to its end. A command that ran and failed is not an error
/// here: its [`Exit`] says so.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// The command did not finish within its time limit.
    #[error("the command did not finish within {after:?}")]
    Timeout {
        /// The time limit.
        after: Duration,
    },
    /// The transport failed (connection lost, channel refused).
    #[error("the connection to the rescue system failed")]
    Transport {
        /// What the transport reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Runs shell commands on a rescue system, streaming their output.
///
/// [`SshSession`](super::SshSession) is the real one; tests of the probe and of the plan runner
/// use a fake that answers from a table.
#[async_trait]
pub trait RemoteShell: Send + Sync {
    /// Runs `command` (a line for the remote login shell), passing every output chunk to
    /// `on_output` as it arrives, and returns how it ended. Stops the command and returns
    /// [`ShellError::Timeout`] when it has not finished after `timeout`; dropping the future
    /// closes the channel, which stops the remote pipeline too.
    async fn exec(
        &self,
        command: &str,
        timeout: Duration,
        on_output: &mut (dyn for<'chunk> FnMut(Stream, &'chunk [u8]) + Send),
    ) -> Result<Exit, ShellError>;
}

/// Runs a short command and collects its whole output.
pub async fn capture(
    shell: &dyn RemoteShell,
    command: &str,
    timeout: Duration,
) -> Result<Output, ShellError> {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let exit = shell
        .exec(command, timeout, &mut |stream, chunk| match stream {
            Stream::Stdout => stdout.extend_from_slice(chunk),
            Stream::Stderr => stderr.extend_from_slice(chunk),
        })
        .await?;
    Ok(Output {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        exit,
    })
}

/// Quotes `text` as one word for a POSIX shell.
pub fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
    {
        return text.to_owned();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(shell_quote("/dev/sda"), "/dev/sda");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("x?uuid=${uuid}"), "'x?uuid=${uuid}'");
        assert_eq!(shell_quote(""), "''");
    }
}
