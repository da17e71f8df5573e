//! The `bootstrap` job: from a server (in rescue or not) to a disk that boots Talos, with every
//! step, output line and the image write's progress in the job log.
//!
//! # Expected flow
//! 0. Check that the image exists ([`check_image`]): a `Range` GET of the exact URL the rescue
//!    system will download. An Image Factory that does not know the schematic or the Talos
//!    version (or a custom URL that answers 404) fails the job with the server's own message,
//!    before the server is rebooted into rescue or its disk touched. No answer at all (a
//!    timeout while the factory builds, an address only the rescue system reaches) is logged
//!    and the bootstrap goes on.
//!
//!    Then check that the server may be erased ([`check_bootstrap`]): a live node only with `force`,
//!    and a forced control plane only when etcd keeps a healthy majority without it. The API
//!    checked the same when it queued the job; the node may have been configured since. Once
//!    the check passed, the server's config and label timestamps are cleared: it is handed to
//!    this bootstrap, and a retry after a failure needs no `force`.
//! 1. If the server does not answer SSH as a rescue system, activate rescue through its provider
//!    account with our key and power-cycle it ([`enter_rescue`]).
//! 2. Wait, with growing pauses and up to [`BootstrapSettings::rescue_timeout`], until the probe
//!    on `RESCUE_SSH_PORT` sees the hostname `rescue`; record the probe (UUID, disks).
//! 3. Refuse an SMBIOS UUID that cannot identify the node (the failure carries the support
//!    request for Hetzner).
//! 4. Plan from the stored server and the job's choices (the same plan as the dry run, the
//!    same image as step 0 checked), then install: wipe, write the image (progress in percent
//!    when step 0 learnt the image size), sync, reboot.
//! 5. Record the server as bootstrapped: the disk, not accessible, config timestamps cleared.
//!
//! # Guarantees
//! - Not repeatable: a bootstrap the service stopped in the middle fails with a reason saying so
//!   (the disk may be half written); a new bootstrap starts from step 1 and is safe.
//! - Cancelling drops the SSH session, which stops the remote pipeline.
//! - The log never holds the SSH key or a machine config: only step names, command output and
//!   progress.
//!
//! # Errors
//! The job fails with the first error, described with its causes.

use std::time::{Duration, Instant};

use crate::bootstrap::{
    BootstrapChoices, BootstrapEnvironment, bootstrap_image, bootstrap_request,
};
use crate::ids::ServerId;
use crate::installer::{
    HostKeys, ImageCheck, InstallEvent, InstallSink, Probe, ProbeError, SshSession, SshTarget,
    check_image, install, parse_dd_progress, plan,
};
use crate::lifecycle::{Precheck, check_bootstrap, precheck_bootstrap};
use crate::rescue::{RescueError, enter_rescue};
use crate::sync::ProviderFactory;
use crate::{RetryPolicy, Secret, error_chain, http_client};
use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{JobContext, JobError, JobHandler, JobKind, LifecycleSettings};

/// Why a bootstrap the service stopped in the middle failed.
pub const BOOTSTRAP_ABANDONED: &str = "talos-manager stopped mid-install (crash, kill or restart): \
     the disk may be half written; start a new bootstrap";

/// The longest pause between two attempts to reach the rescue system.
const MAX_RESCUE_POLL: Duration = Duration::from_secs(15);
/// How long one attempt to reach the rescue system may take.
const RESCUE_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the image check waits for the image server's first answer: the Image Factory
/// builds an image it has not built before sending a byte (as long as the write's stall limit).
const IMAGE_CHECK_TIMEOUT: Duration = Duration::from_secs(300);
/// At most one progress line per this interval (plus the final one).
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// A bootstrap's arguments, stored as the job's (never secrets): the user's choices, whose
/// defaults core applies, and whether to erase a live node.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BootstrapArgs {
    /// The disk, Talos version and schematic chosen (flattened: the stored JSON is
    /// `{"disk", "talos_version", "schematic_id", "force"}`).
    #[serde(flatten)]
    pub choices: BootstrapChoices,
    /// Erase even a live node ([`check_bootstrap`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// What bootstraps need from the service's configuration (the service builds them from it).
#[derive(Debug, Clone)]
pub struct BootstrapSettings {
    /// `SSH_PRIVATE_KEY`: the key rescue systems authorize.
    pub ssh_private_key: Option<Secret<String>>,
    /// `RESCUE_SSH_PORT`.
    pub rescue_ssh_port: u16,
    /// `RESCUE_TIMEOUT`: how long to wait for a server to come up in rescue.
    pub rescue_timeout: Duration,
    /// The first pause between attempts to reach the rescue system; it doubles up to 15 s.
    pub rescue_poll: Duration,
    /// Where images and configs come from.
    pub environment: BootstrapEnvironment,
}

/// Runs bootstraps with the service's provider factory and settings.
#[derive(Debug, Clone)]
pub struct BootstrapJob {
    providers: ProviderFactory,
    settings: BootstrapSettings,
    lifecycle: Option<LifecycleSettings>,
}

impl BootstrapJob {
    /// A bootstrap handler. Without [`BootstrapJob::with_lifecycle`] it cannot ask etcd, so it
    /// refuses every forced bootstrap of a live node.
    pub fn new(providers: ProviderFactory, settings: BootstrapSettings) -> BootstrapJob {
        BootstrapJob {
            providers,
            settings,
            lifecycle: None,
        }
    }

    /// Reaches the Talos API as `lifecycle` says, to check etcd before a forced bootstrap of a
    /// live control plane.
    pub fn with_lifecycle(mut self, lifecycle: LifecycleSettings) -> BootstrapJob {
        self.lifecycle = Some(lifecycle);
        self
    }

    /// Asks the image server for the image this bootstrap would write; fails with its message
    /// when it refuses. Returns the decompressed size when the answer tells it.
    async fn check_image(
        &self,
        context: &JobContext,
        server_id: ServerId,
        args: &BootstrapArgs,
    ) -> Result<Option<u64>, JobError> {
        let image = bootstrap_image(
            context.store(),
            server_id,
            &args.choices,
            &self.settings.environment,
        )
        .await
        .map_err(|error| JobError::BootstrapPlan(Box::new(error)))?;
        let url = image.url();
        let policy = RetryPolicy {
            request_timeout: IMAGE_CHECK_TIMEOUT,
            ..RetryPolicy::default()
        };
        let client =
            http_client(&policy).map_err(|error| JobError::ImageClient(Box::new(error)))?;
        context
            .log(format!("checking that the image {url} exists"))
            .await;
        match check_image(&client, &url)
            .await
            .map_err(|error| JobError::Image(Box::new(error)))?
        {
            ImageCheck::Found { size } => {
                context.log("the image exists").await;
                Ok(size)
            }
            ImageCheck::Unconfirmed { reason } => {
                context
                    .log(format!(
                        "could not confirm the image exists ({reason}): going on, the server's \
                         own download decides"
                    ))
                    .await;
                Ok(None)
            }
        }
    }

    /// Refuses to erase a live node unless forced, and a control plane etcd cannot lose.
    async fn check_guard(
        &self,
        context: &JobContext,
        server_id: ServerId,
        args: &BootstrapArgs,
    ) -> Result<(), JobError> {
        let force = args.force;
        let precheck = match &self.lifecycle {
            None => {
                let server = context.store().get_server(server_id).await?;
                match precheck_bootstrap(&server, force)
                    .map_err(|error| JobError::BootstrapGuard(Box::new(error)))?
                {
                    Precheck::Free => Precheck::Free,
                    Precheck::Forced(_) => return Err(JobError::NoTalosApi),
                }
            }
            Some(lifecycle) => {
                lifecycle
                    .run(context, async |ctx| {
                        check_bootstrap(ctx, server_id, force).await
                    })
                    .await
                    .map_err(|error| JobError::BootstrapGuard(Box::new(error)))?
                    .precheck
            }
        };
        if let Precheck::Forced(_) = precheck {
            // Handed to this bootstrap: a retry after a failure is no longer a live node.
            context.store().record_erase_started(server_id).await?;
            context
                .log("the node's config and label timestamps are cleared: it is being erased")
                .await;
        }
        Ok(())
    }
}

#[async_trait]
impl JobHandler for BootstrapJob {
    fn kind(&self) -> &'static str {
        JobKind::Bootstrap.as_str()
    }

    fn repeatable(&self) -> bool {
        false
    }

    fn abandoned_reason(&self) -> &'static str {
        BOOTSTRAP_ABANDONED
    }

    async fn run(&self, context: &JobContext) -> Result<(), JobError> {
        // Dropping the bootstrap closes its SSH session, which stops the remote pipeline.
        tokio::select! {
            result = self.bootstrap(context) => result,
            () = context.cancelled() => Err(JobError::Cancelled),
        }
    }
}

impl BootstrapJob {
    async fn bootstrap(&self, context: &JobContext) -> Result<(), JobError> {
        let store = context.store();
        let job = context.job();
        let server_id = context.server_id()?;
        let args: BootstrapArgs =
            serde_json::from_value(job.args.clone()).map_err(JobError::Arguments)?;
        let key = self
            .settings
            .ssh_private_key
            .as_ref()
            .ok_or_else(|| JobError::Rescue(Box::new(RescueError::NoSshKey)))?;
        let image_size = self.check_image(context, server_id, &args).await?;
        self.check_guard(context, server_id, &args).await?;
        let server = store.get_server(server_id).await?;
        let name = server.inventory.name.clone();
        let address = server
            .inventory
            .ipv4
            .clone()
            .ok_or_else(|| JobError::NoAddress {
                server: name.clone(),
            })?;
        let target = |host_keys: HostKeys| SshTarget {
            port: self.settings.rescue_ssh_port,
            host_keys,
            connect_timeout: RESCUE_CONNECT_TIMEOUT,
            ..SshTarget::new(address.clone(), key.clone())
        };
        context
            .log(format!(
                "bootstrapping {name}: looking for its rescue system at {address}:{}",
                self.settings.rescue_ssh_port
            ))
            .await;
        let (session, probe) = match reach_rescue(&target(HostKeys::trust_on_first_use())).await {
            Ok(found) => found,
            Err(reason) => {
                context
                    .log(format!(
                        "not in rescue ({reason}): activating rescue through the provider"
                    ))
                    .await;
                let entered = enter_rescue(store, &self.providers, server_id, Some(key))
                    .await
                    .map_err(|error| JobError::Rescue(Box::new(error)))?;
                context
                    .log("rescue activated and the server power-cycled; waiting for it to boot")
                    .await;
                // Rescue systems make new host keys at every boot: the ones the provider
                // announced for this activation when it did (Robot's `host_key`), else a fresh
                // pin on first use.
                let announced = &entered.activation.host_key_fingerprints;
                if !announced.is_empty() {
                    context
                        .log(format!(
                            "the provider announced the rescue system's host key(s) {}: no other \
                             key is accepted",
                            announced.join(", ")
                        ))
                        .await;
                }
                self.wait_for_rescue(context, &name, &target(HostKeys::expect(announced.clone())))
                    .await?
            }
        };
        store.record_probe(server_id, &probe.store_record()).await?;
        context
            .log(format!(
                "in rescue: SMBIOS UUID {}, {} block device(s)",
                probe.smbios_uuid,
                probe.block_devices.len()
            ))
            .await;
        let fleet: Vec<(String, String)> = store
            .list_servers()
            .await?
            .into_iter()
            .filter(|other| other.id != server_id)
            .filter_map(|other| other.uuid.map(|uuid| (other.inventory.name, uuid)))
            .collect();
        probe
            .check_uuid(
                fleet
                    .iter()
                    .map(|(name, uuid)| (name.as_str(), uuid.as_str())),
            )
            .map_err(|error| JobError::Uuid(Box::new(error)))?;
        self.install(context, server_id, &args, &session, image_size)
            .await?;
        session.close().await;
        Ok(())
    }

    /// Plans, writes the image and records the server as bootstrapped.
    async fn install(
        &self,
        context: &JobContext,
        server_id: ServerId,
        args: &BootstrapArgs,
        session: &SshSession,
        image_size: Option<u64>,
    ) -> Result<(), JobError> {
        let store = context.store();
        let mut request =
            bootstrap_request(store, server_id, &args.choices, &self.settings.environment)
                .await
                .map_err(|error| JobError::BootstrapPlan(Box::new(error)))?;
        request.image_size = image_size;
        let plan = plan(&request);
        for line in plan.to_string().lines() {
            context.log(line).await;
        }
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let mut sink = LogSink::new(sender, plan.steps.len());
        let run = async {
            let result = install(session, &plan, &mut sink).await;
            drop(sink);
            result
        };
        let write_log = async {
            while let Some(entry) = receiver.recv().await {
                match entry {
                    LogEntry::Line(line) => context.log(line).await,
                    LogEntry::Progress(percent) => {
                        if let Err(error) = store
                            .set_job_progress(context.job().id, Some(context.worker()), percent)
                            .await
                        {
                            tracing::warn!(error = %error_chain(&error), "failed to store a job's progress");
                        }
                    }
                }
            }
        };
        let (result, ()) = tokio::join!(run, write_log);
        result.map_err(|error| JobError::Install(Box::new(error)))?;
        let wwid = request.disk.wwid();
        store
            .record_bootstrapped(server_id, &request.disk.path(), wwid.as_deref())
            .await?;
        // What a rolling upgrade compares with to skip nodes already at its schematic.
        let schematic = match &request.image {
            crate::installer::ImageSource::Factory { schematic, .. } => Some(schematic.as_str()),
            crate::installer::ImageSource::Custom { .. } => None,
        };
        store
            .record_installed_schematic(server_id, schematic)
            .await?;
        context
            .log(format!(
                "Talos is on {}: the server boots it and asks for its config",
                request.disk.path()
            ))
            .await;
        Ok(())
    }

    /// Tries to reach the rescue system until it answers or the timeout is spent.
    async fn wait_for_rescue(
        &self,
        context: &JobContext,
        name: &str,
        target: &SshTarget,
    ) -> Result<(SshSession, Probe), JobError> {
        let started = Instant::now();
        let mut pause = self.settings.rescue_poll;
        loop {
            tokio::time::sleep(pause).await;
            match reach_rescue(target).await {
                Ok(found) => return Ok(found),
                Err(reason) if started.elapsed() >= self.settings.rescue_timeout => {
                    return Err(JobError::RescueTimeout {
                        server: name.to_owned(),
                        seconds: self.settings.rescue_timeout.as_secs(),
                        last_attempt: reason,
                    });
                }
                Err(reason) => {
                    context
                        .log(format!("rescue system not reachable yet: {reason}"))
                        .await;
                }
            }
            pause = (pause * 2).min(MAX_RESCUE_POLL);
        }
    }
}

/// Connects and probes: the session and what the probe found, or why the server is not (yet)
/// a reachable rescue system.
async fn reach_rescue(target: &SshTarget) -> Result<(SshSession, Probe), String> {
    let session = SshSession::connect(target)
        .await
        .map_err(|error| error_chain(&error).to_string())?;
    match crate::installer::probe(&session).await {
        Ok(probe) => Ok((session, probe)),
        Err(error) => {
            session.close().await;
            Err(match error {
                ProbeError::NotInRescue { hostname } => {
                    format!("it answers as {hostname:?}, not as the rescue system")
                }
                other => error_chain(&other).to_string(),
            })
        }
    }
}

/// What the installer's events become: log lines and progress updates.
enum LogEntry {
    Line(String),
    Progress(i32),
}

/// Turns installer events into log entries: step headings, output lines, and dd's progress at
/// most once a second (and always its last report).
struct LogSink {
    sender: mpsc::UnboundedSender<LogEntry>,
    n_steps: usize,
    last_progress: Option<Instant>,
    last_percent: Option<i32>,
}

impl LogSink {
    fn new(sender: mpsc::UnboundedSender<LogEntry>, n_steps: usize) -> LogSink {
        LogSink {
            sender,
            n_steps,
            last_progress: None,
            last_percent: None,
        }
    }

    fn send(&self, entry: LogEntry) {
        // The receiver lives as long as the install; a send can only fail after it.
        let _ = self.sender.send(entry);
    }
}

const MIB: f64 = 1024.0 * 1024.0;

impl InstallSink for LogSink {
    fn event(&mut self, event: InstallEvent<'_>) {
        match event {
            InstallEvent::StepStarted { index, step } => self.send(LogEntry::Line(format!(
                "step {}/{}: {}",
                index + 1,
                self.n_steps,
                step.name
            ))),
            // dd's own progress lines arrive again as `Progress`, throttled.
            InstallEvent::Line { line, .. } if parse_dd_progress(line, None).is_some() => {}
            InstallEvent::Line { line, .. } => self.send(LogEntry::Line(line.to_owned())),
            InstallEvent::Progress(progress) => {
                let percent = progress.percent.map(|p| p.floor() as i32);
                let finished = percent == Some(100) && self.last_percent != Some(100);
                let due = self
                    .last_progress
                    .is_none_or(|last| last.elapsed() >= PROGRESS_INTERVAL);
                if !(due || finished) {
                    return;
                }
                self.last_progress = Some(Instant::now());
                let written = progress.bytes as f64 / MIB;
                let rate = progress
                    .bytes_per_second
                    .map(|rate| format!(", {:.1} MiB/s", rate / MIB))
                    .unwrap_or_default();
                let line = match percent {
                    Some(percent) => format!("written {percent} % ({written:.1} MiB{rate})"),
                    None => format!("written {written:.1} MiB{rate}"),
                };
                self.send(LogEntry::Line(line));
                if let Some(percent) = percent
                    && self.last_percent != Some(percent)
                {
                    self.last_percent = Some(percent);
                    self.send(LogEntry::Progress(percent));
                }
            }
            InstallEvent::StepFinished { .. } => {}
        }
    }
}
