//! The rescue-mode installer: from a Hetzner rescue system to a disk that boots Talos.
//!
//! The service calls, in order:
//! 1. [`SshSession::connect`] with an [`SshTarget`] (our key, the port, the [`HostKeys`] policy);
//! 2. [`probe`]: refuses servers that are not in rescue, and reads the SMBIOS UUID, the disks
//!    and the network; [`Probe::check_uuid`] refuses UUIDs that cannot identify a node;
//! 3. [`plan`]: a [`BootstrapRequest`] becomes a [`Plan`], the exact steps (its `Display` is the
//!    dry run);
//! 4. [`install`]: runs the plan, passing every output line and dd's progress to a sink.
//!
//! Everything after the connection goes through [`RemoteShell`], so tests can run the probe and
//! the plan without SSH.

mod grub;
mod image_size;
mod plan;
mod probe;
mod progress;
mod shell;
mod ssh;
mod uuid;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use grub::{GrubError, inject_talos_config};
pub use image_size::{ImageCheck, ImageUnavailable, check_image, image_size};
pub use plan::{Action, BootstrapRequest, Decompressor, ImageSource, Plan, Step, plan};
pub use probe::{
    BlockDevice, LSBLK_COMMAND, NetworkInterface, Probe, ProbeError, is_valid_wwid, normalize_wwn,
    parse_lsblk, probe,
};
pub use progress::{Progress, parse_dd_progress};
pub use shell::{
    Exit, MAX_CAPTURE_BYTES, Output, RemoteShell, ShellError, Stream, capture, capture_at_most,
    shell_quote,
};
pub use ssh::{DEFAULT_SSH_PORT, HostKeys, SshError, SshSession, SshTarget, public_key_of};
pub use uuid::{InvalidUuid, UuidProblem, check_smbios_uuid, support_request};

use progress::LineSplitter;

/// How many stderr lines a [`InstallError::StepFailed`] keeps.
const STDERR_TAIL: usize = 10;
const SHORT_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// What [`install`] reports while it runs.
#[derive(Debug)]
pub enum InstallEvent<'a> {
    /// A step begins.
    StepStarted {
        /// Its position in the plan, from 0.
        index: usize,
        /// The step.
        step: &'a Step,
    },
    /// A line of output of the running step.
    Line {
        /// Which stream.
        stream: Stream,
        /// The line, without its line break.
        line: &'a str,
    },
    /// dd's progress during [`Action::WriteImage`].
    Progress(Progress),
    /// A step ended.
    StepFinished {
        /// Its position in the plan.
        index: usize,
        /// How its (last) command ended.
        exit: Exit,
    },
}

/// Receives what [`install`] reports; the service stores it in the job log. Closures work.
pub trait InstallSink: Send {
    /// Called for every event, in order.
    fn event(&mut self, event: InstallEvent<'_>);
}

impl<F: FnMut(InstallEvent<'_>) + Send> InstallSink for F {
    fn event(&mut self, event: InstallEvent<'_>) {
        self(event)
    }
}

/// Why [`install`] stopped. Every variant names the step; the disk may be half written, and
/// running the plan again from the start is safe.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A command ended badly.
    #[error(
        "step `{step}` failed: `{command}` ended with {exit}; last lines of stderr: {}",
        stderr_tail.join(" | ")
    )]
    StepFailed {
        /// The step's name.
        step: String,
        /// The command line.
        command: String,
        /// How it ended.
        exit: Exit,
        /// The last lines it wrote to stderr.
        stderr_tail: Vec<String>,
    },
    /// A command could not be run (connection lost, time limit).
    #[error("step `{step}` could not run `{command}`")]
    Shell {
        /// The step's name.
        step: String,
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: ShellError,
    },
    /// A long command printed nothing for too long (a stalled download, a hung disk); it was
    /// stopped.
    #[error("step `{step}` stalled: `{command}` printed nothing for {after:?} and was stopped")]
    Stalled {
        /// The step's name.
        step: String,
        /// The command line.
        command: String,
        /// How long it was quiet.
        after: Duration,
    },
    /// The disk has no partition named BOOT after writing the image.
    #[error(
        "the image written to {disk} has no partition named BOOT, so talos.config cannot be added to its grub.cfg; use an Image Factory schematic with the talos.config kernel argument instead"
    )]
    BootPartitionMissing {
        /// The disk.
        disk: String,
    },
    /// The BOOT partition has no `grub/grub.cfg` (Talos 1.10 and later metal images).
    #[error(
        "the image's BOOT partition has no grub/grub.cfg, so talos.config cannot be added; use an Image Factory schematic with the talos.config kernel argument instead"
    )]
    GrubConfigMissing,
    /// `sfdisk -J` printed something unexpected.
    #[error("the partition table of {disk} could not be read")]
    PartitionTable {
        /// The disk.
        disk: String,
        /// The parser's report.
        #[source]
        source: serde_json::Error,
    },
    /// grub.cfg could not be changed.
    #[error("grub.cfg could not be changed")]
    Grub(#[source] GrubError),
}

/// Runs a plan on a rescue system.
///
/// # Expected flow
/// Each step of the plan in order: stop md arrays using the disk, delete its partition table,
/// erase signatures, stream the image through the decompressor into `dd`, `sync`, for custom
/// images add `talos.config=` to grub.cfg on the BOOT partition, then `reboot`.
///
/// # Guarantees
/// - Stops at the first failing step; later steps (and so the reboot) do not run.
/// - Every line of output reaches `sink`, and dd's progress lines also as
///   [`InstallEvent::Progress`].
/// - The BOOT partition's loop device and mount are removed again, also when editing fails.
/// - A connection that drops or hangs during `reboot` counts as success.
/// - Dropping the returned future closes the SSH channel, which stops the remote pipeline.
///
/// # Errors
/// [`InstallError`], naming the step; for a failed command also the command, its exit status
/// and the last lines of its stderr.
pub async fn install(
    shell: &dyn RemoteShell,
    plan: &Plan,
    sink: &mut dyn InstallSink,
) -> Result<(), InstallError> {
    for (index, step) in plan.steps.iter().enumerate() {
        sink.event(InstallEvent::StepStarted { index, step });
        let exit = match &step.action {
            Action::Run {
                command,
                tolerate_failure,
                timeout,
            } => {
                let exit = run_step(shell, step, command, *timeout, None, None, sink).await?;
                if !tolerate_failure {
                    exit.result?;
                }
                exit.exit
            }
            Action::WriteImage {
                command,
                size,
                timeout,
                stall_timeout,
            } => {
                let size = Some(*size);
                let stall = Some(*stall_timeout);
                run_step(shell, step, command, *timeout, stall, size, sink)
                    .await?
                    .result?;
                Exit::Status(0)
            }
            Action::InjectGrub {
                disk,
                talos_config_url,
            } => {
                inject_grub(shell, step, disk, talos_config_url, sink).await?;
                Exit::Status(0)
            }
            Action::Reboot => {
                match shell
                    .exec(&step.command(), SHORT_COMMAND_TIMEOUT, &mut |_, _| {})
                    .await
                {
                    Ok(Exit::Status(status)) if status != 0 => {
                        return Err(InstallError::StepFailed {
                            step: step.name.clone(),
                            command: step.command(),
                            exit: Exit::Status(status),
                            stderr_tail: Vec::new(),
                        });
                    }
                    Ok(exit) => exit,
                    // The machine going down takes the connection with it, or leaves it hanging.
                    Err(
                        ShellError::Transport { .. }
                        | ShellError::Timeout { .. }
                        | ShellError::OutputTooLarge { .. },
                    ) => Exit::Disconnected,
                }
            }
        };
        sink.event(InstallEvent::StepFinished { index, exit });
    }
    Ok(())
}

struct StepExit {
    exit: Exit,
    result: Result<(), InstallError>,
}

/// Runs one command, streaming its lines (and dd progress when `progress_size` is set).
async fn run_step(
    shell: &dyn RemoteShell,
    step: &Step,
    command: &str,
    timeout: Duration,
    stall_timeout: Option<Duration>,
    progress_size: Option<Option<u64>>,
    sink: &mut dyn InstallSink,
) -> Result<StepExit, InstallError> {
    let mut stdout = LineSplitter::default();
    let mut stderr = LineSplitter::default();
    let mut tail = VecDeque::with_capacity(STDERR_TAIL);
    let mut on_line = |stream: Stream, line: &str, sink: &mut dyn InstallSink| {
        sink.event(InstallEvent::Line { stream, line });
        if stream == Stream::Stderr {
            if let Some(progress) = progress_size.and_then(|size| parse_dd_progress(line, size)) {
                sink.event(InstallEvent::Progress(progress));
                return;
            }
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(line.to_owned());
        }
    };
    let started = Instant::now();
    let last_output_ms = AtomicU64::new(0);
    let exit = {
        let mut on_chunk = |stream: Stream, chunk: &[u8]| {
            last_output_ms.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            let splitter = match stream {
                Stream::Stdout => &mut stdout,
                Stream::Stderr => &mut stderr,
            };
            splitter.push(chunk, &mut |line| on_line(stream, line, sink));
        };
        let exec = shell.exec(command, timeout, &mut on_chunk);
        tokio::pin!(exec);
        loop {
            let check = stall_timeout.map_or(timeout, |stall| stall.min(Duration::from_secs(1)));
            tokio::select! {
                exit = &mut exec => break exit,
                () = tokio::time::sleep(check) => {
                    let Some(stall) = stall_timeout else { continue };
                    let last = Duration::from_millis(last_output_ms.load(Ordering::Relaxed));
                    if started.elapsed().saturating_sub(last) >= stall {
                        // Dropping `exec` closes the channel, which stops the pipeline.
                        return Err(InstallError::Stalled {
                            step: step.name.clone(),
                            command: command.to_owned(),
                            after: stall,
                        });
                    }
                }
            }
        }
    }
    .map_err(|source| InstallError::Shell {
        step: step.name.clone(),
        command: command.to_owned(),
        source,
    })?;
    stdout.flush(&mut |line| on_line(Stream::Stdout, line, sink));
    stderr.flush(&mut |line| on_line(Stream::Stderr, line, sink));
    let result = if exit.success() {
        Ok(())
    } else {
        Err(InstallError::StepFailed {
            step: step.name.clone(),
            command: command.to_owned(),
            exit: exit.clone(),
            stderr_tail: tail.into_iter().collect(),
        })
    };
    Ok(StepExit { exit, result })
}

/// Runs a helper command of a step and returns its stdout, failing the step otherwise.
async fn helper(
    shell: &dyn RemoteShell,
    step: &Step,
    command: &str,
    sink: &mut dyn InstallSink,
) -> Result<String, InstallError> {
    sink.event(InstallEvent::Line {
        stream: Stream::Stdout,
        line: &format!("$ {command}"),
    });
    let output = capture(shell, command, SHORT_COMMAND_TIMEOUT)
        .await
        .map_err(|source| InstallError::Shell {
            step: step.name.clone(),
            command: command.to_owned(),
            source,
        })?;
    if !output.exit.success() {
        return Err(InstallError::StepFailed {
            step: step.name.clone(),
            command: command.to_owned(),
            exit: output.exit,
            stderr_tail: last_lines(&output.stderr),
        });
    }
    Ok(output.stdout)
}

fn last_lines(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(STDERR_TAIL)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[derive(serde::Deserialize)]
struct SfdiskDump {
    partitiontable: PartitionTable,
}

#[derive(serde::Deserialize)]
struct PartitionTable {
    sectorsize: Option<u64>,
    #[serde(default)]
    partitions: Vec<Partition>,
}

#[derive(serde::Deserialize)]
struct Partition {
    start: u64,
    size: u64,
    name: Option<String>,
}

/// Finds the BOOT partition's byte range in `sfdisk -J` output.
fn boot_partition(json: &str) -> Result<Option<(u64, u64)>, serde_json::Error> {
    let dump: SfdiskDump = serde_json::from_str(json)?;
    let sector = dump.partitiontable.sectorsize.unwrap_or(512);
    Ok(dump
        .partitiontable
        .partitions
        .iter()
        .find(|p| p.name.as_deref() == Some("BOOT"))
        .map(|p| (p.start * sector, p.size * sector)))
}

async fn inject_grub(
    shell: &dyn RemoteShell,
    step: &Step,
    disk: &str,
    url: &str,
    sink: &mut dyn InstallSink,
) -> Result<(), InstallError> {
    let quoted_disk = shell_quote(disk);
    let table = match helper(shell, step, &format!("sfdisk -J {quoted_disk}"), sink).await {
        Ok(table) => table,
        // sfdisk fails on a disk without a partition table: the image has no BOOT partition.
        Err(InstallError::StepFailed { stderr_tail, .. })
            if stderr_tail.iter().any(|l| l.contains("partition table")) =>
        {
            return Err(InstallError::BootPartitionMissing {
                disk: disk.to_owned(),
            });
        }
        Err(error) => return Err(error),
    };
    let (start, size) = boot_partition(&table)
        .map_err(|source| InstallError::PartitionTable {
            disk: disk.to_owned(),
            source,
        })?
        .ok_or_else(|| InstallError::BootPartitionMissing {
            disk: disk.to_owned(),
        })?;
    let attach = format!("losetup -f --show -o {start} --sizelimit {size} {quoted_disk}");
    let device = helper(shell, step, &attach, sink).await?.trim().to_owned();
    let device = shell_quote(&device);
    let result = async {
        let mount_point = helper(shell, step, "mktemp -d /tmp/talos-boot.XXXXXX", sink)
            .await?
            .trim()
            .to_owned();
        let mount_point = shell_quote(&mount_point);
        helper(shell, step, &format!("mount {device} {mount_point}"), sink).await?;
        let edited = edit_grub_cfg(shell, step, &mount_point, url, sink).await;
        let unmounted = helper(
            shell,
            step,
            &format!("umount {mount_point} && rmdir {mount_point}"),
            sink,
        )
        .await;
        edited.and(unmounted.map(drop))
    }
    .await;
    let detached = helper(shell, step, &format!("losetup -d {device}"), sink).await;
    result.and(detached.map(drop))
}

async fn edit_grub_cfg(
    shell: &dyn RemoteShell,
    step: &Step,
    mount_point: &str,
    url: &str,
    sink: &mut dyn InstallSink,
) -> Result<(), InstallError> {
    let path = format!("{mount_point}/grub/grub.cfg");
    let check = format!("test -f {path} && echo present || echo missing");
    if helper(shell, step, &check, sink).await?.trim() != "present" {
        return Err(InstallError::GrubConfigMissing);
    }
    let original = helper(shell, step, &format!("cat {path}"), sink).await?;
    let edited = inject_talos_config(&original, url).map_err(InstallError::Grub)?;
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(edited.as_bytes());
    let write =
        format!("printf %s {encoded} | base64 -d > {path}.new && mv {path}.new {path} && sync");
    sink.event(InstallEvent::Line {
        stream: Stream::Stdout,
        line: &format!("writing {path} with talos.config={url}"),
    });
    let output = capture(shell, &write, SHORT_COMMAND_TIMEOUT)
        .await
        .map_err(|source| InstallError::Shell {
            step: step.name.clone(),
            command: write.clone(),
            source,
        })?;
    if !output.exit.success() {
        return Err(InstallError::StepFailed {
            step: step.name.clone(),
            command: format!("printf %s <grub.cfg as base64> | base64 -d > {path}.new && mv …"),
            exit: output.exit,
            stderr_tail: last_lines(&output.stderr),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::boot_partition;

    #[test]
    fn finds_the_boot_partition() {
        let json = r#"{"partitiontable":{"label":"gpt","device":"/dev/loop3","unit":"sectors",
            "sectorsize":512,"partitions":[
              {"node":"/dev/loop3p1","start":2048,"size":2048,"type":"X","name":"EFI"},
              {"node":"/dev/loop3p2","start":4096,"size":8192,"type":"X","name":"BOOT"}]}}"#;
        assert_eq!(
            boot_partition(json).unwrap(),
            Some((4096 * 512, 8192 * 512))
        );
        let empty = r#"{"partitiontable":{"label":"gpt","partitions":[]}}"#;
        assert_eq!(boot_partition(empty).unwrap(), None);
    }
}
