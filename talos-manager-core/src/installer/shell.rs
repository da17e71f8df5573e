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
    /// A captured command printed more than [`MAX_CAPTURE_BYTES`]; it was stopped.
    #[error("the command printed more than {limit} bytes")]
    OutputTooLarge {
        /// The limit.
        limit: usize,
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

/// The most output (standard output and error together) [`capture`] collects: far more than
/// any probe prints, and a host that streams more is stopped instead of filling memory.
pub const MAX_CAPTURE_BYTES: usize = 1 << 20;

/// Runs a short command and collects its whole output, at most [`MAX_CAPTURE_BYTES`]: a
/// command that prints more is stopped and [`ShellError::OutputTooLarge`] returned.
pub async fn capture(
    shell: &dyn RemoteShell,
    command: &str,
    timeout: Duration,
) -> Result<Output, ShellError> {
    capture_at_most(shell, command, timeout, MAX_CAPTURE_BYTES).await
}

/// [`capture`] with another limit.
pub async fn capture_at_most(
    shell: &dyn RemoteShell,
    command: &str,
    timeout: Duration,
    limit: usize,
) -> Result<Output, ShellError> {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let too_much = tokio::sync::Notify::new();
    let mut on_output = |stream: Stream, chunk: &[u8]| {
        if stdout.len() + stderr.len() + chunk.len() > limit {
            too_much.notify_one();
            return;
        }
        match stream {
            Stream::Stdout => stdout.extend_from_slice(chunk),
            Stream::Stderr => stderr.extend_from_slice(chunk),
        }
    };
    let exit = tokio::select! {
        exit = shell.exec(command, timeout, &mut on_output) => exit?,
        // Dropping the command's future closes its channel, which stops it.
        () = too_much.notified() => return Err(ShellError::OutputTooLarge { limit }),
    };
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
    use super::*;

    /// A rescue host that streams output for as long as it is read.
    struct Flood;

    #[async_trait]
    impl RemoteShell for Flood {
        async fn exec(
            &self,
            _command: &str,
            _timeout: Duration,
            on_output: &mut (dyn for<'chunk> FnMut(Stream, &'chunk [u8]) + Send),
        ) -> Result<Exit, ShellError> {
            let chunk = [b'x'; 64 * 1024];
            loop {
                on_output(Stream::Stdout, &chunk);
                tokio::task::yield_now().await;
            }
        }
    }

    #[tokio::test]
    async fn a_flood_of_output_is_stopped_at_the_cap() {
        let started = std::time::Instant::now();
        let error = capture(&Flood, "dmidecode -s system-uuid", Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ShellError::OutputTooLarge { limit } if limit == MAX_CAPTURE_BYTES),
            "{error}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(shell_quote("/dev/sda"), "/dev/sda");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("x?uuid=${uuid}"), "'x?uuid=${uuid}'");
        assert_eq!(shell_quote(""), "''");
    }
}
