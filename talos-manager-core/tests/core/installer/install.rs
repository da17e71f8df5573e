//! The whole install on a loop device: wipe, stream, grub.cfg, reboot (a stub).

use std::sync::OnceLock;

use talos_manager_core::Architecture;
use talos_manager_core::installer::{
    Action, BlockDevice, BootstrapRequest, Exit, ImageSource, InstallError, InstallEvent, Plan,
    Progress, SshSession, Stream, inject_talos_config, install, plan,
};

use super::harness::{
    CuttableProxy, HttpServer, KeyPair, LoopDisk, Sshd, TestImage, partition, with_boot_mounted,
};

const IMAGE_MIB: u64 = 24;
const DISK_BYTES: u64 = 32 << 20;
const CONFIG_URL: &str = "https://tm.example/config?uuid=${uuid}";

fn image() -> &'static TestImage {
    static IMAGE: OnceLock<TestImage> = OnceLock::new();
    IMAGE.get_or_init(|| TestImage::build(IMAGE_MIB))
}

fn request(disk: &LoopDisk, image: ImageSource) -> BootstrapRequest {
    let name = disk.path().trim_start_matches("/dev/").to_owned();
    BootstrapRequest {
        server: "worker-1".into(),
        disk: BlockDevice {
            name,
            kind: "loop".into(),
            size: DISK_BYTES,
            uuid: None,
            model: None,
            wwn: None,
            raid_arrays: Vec::new(),
            partitions: 0,
        },
        image,
        talos_config_url: CONFIG_URL.into(),
        image_size: Some(IMAGE_MIB << 20),
    }
}

/// What the sink saw.
#[derive(Default)]
struct Log {
    steps: Vec<String>,
    lines: Vec<(Stream, String)>,
    progress: Vec<Progress>,
    finished: Vec<Exit>,
}

async fn run(session: &SshSession, plan: &Plan) -> (Log, Result<(), InstallError>) {
    let mut log = Log::default();
    let result = install(session, plan, &mut |event: InstallEvent<'_>| match event {
        InstallEvent::StepStarted { step, .. } => log.steps.push(step.name.clone()),
        InstallEvent::Line { stream, line } => log.lines.push((stream, line.to_owned())),
        InstallEvent::Progress(progress) => log.progress.push(progress),
        InstallEvent::StepFinished { exit, .. } => log.finished.push(exit),
    })
    .await;
    (log, result)
}

/// Waits at most `seconds` until `http` serves no download any more (`after` says after what).
async fn downloads_end(http: &HttpServer, seconds: u64, after: &str) {
    talos_manager_core::testing::wait_for(
        format!("the download to end {after}"),
        std::time::Duration::from_secs(seconds),
        std::time::Duration::from_millis(100),
        || async {
            match http.active_transfers() {
                0 => Ok(()),
                active => Err(active),
            }
        },
    )
    .await;
}

struct Bench {
    sshd: Sshd,
    http: HttpServer,
    disk: LoopDisk,
    session: SshSession,
}

async fn bench() -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(dir.path(), "key", "-t ed25519");
    let sshd = Sshd::start(&[&key]);
    let session = SshSession::connect(&sshd.target(&key)).await.unwrap();
    Bench {
        sshd,
        http: HttpServer::start(),
        disk: LoopDisk::new(DISK_BYTES),
        session,
    }
}

#[tokio::test]
async fn writes_an_image_factory_image_and_reboots() {
    let image = image();
    let bench = bench().await;
    // Something to wipe first.
    std::fs::write(&bench.disk.file, vec![0xAB; 1 << 20]).unwrap();
    bench.http.put(
        "/image/abc123/v1.9.5/metal-amd64.raw.zst",
        image.zst.clone(),
    );
    let image_source = ImageSource::Factory {
        base_url: bench.http.base_url.clone(),
        schematic: "abc123".into(),
        version: "v1.9.5".into(),
        architecture: Architecture::Amd64,
    };
    let plan = plan(&request(&bench.disk, image_source));
    let (log, result) = run(&bench.session, &plan).await;
    result.unwrap_or_else(|e| panic!("{e}\n{:?}", log.lines));

    assert_eq!(
        log.steps,
        [
            "delete the partition table",
            "erase filesystem signatures",
            "write the Talos image",
            "flush the disk",
            "reboot into Talos"
        ]
    );
    let disk = bench.disk.contents();
    assert!(
        disk[..image.raw.len()] == image.raw[..],
        "the disk does not hold the image"
    );
    assert!(
        disk[image.raw.len()..].iter().all(|&b| b == 0),
        "bytes after the image changed"
    );
    let last = log.progress.last().expect("dd progress events");
    assert_eq!(last.bytes, image.raw.len() as u64);
    assert_eq!(last.percent, Some(100.0));
    assert!(
        log.lines
            .iter()
            .any(|(s, l)| *s == Stream::Stderr && l.contains("records out"))
    );
    assert!(
        bench.sshd.stubs.rebooted(),
        "the reboot stub was not called"
    );
    // An Image Factory image keeps its grub.cfg as it is.
    let cfg = with_boot_mounted(&bench.disk.file, |boot| {
        std::fs::read_to_string(boot.join("grub/grub.cfg")).unwrap()
    });
    assert_eq!(cfg, image.grub_cfg);
}

#[tokio::test]
async fn injects_talos_config_into_a_custom_image() {
    let image = image();
    let bench = bench().await;
    let url = bench
        .http
        .put("/talos/metal-amd64.raw.xz", image.xz.clone());
    let plan = plan(&request(&bench.disk, ImageSource::Custom { url }));
    assert!(
        plan.to_string().contains("add talos.config to grub.cfg"),
        "{plan}"
    );
    let (log, result) = run(&bench.session, &plan).await;
    result.unwrap_or_else(|e| panic!("{e}\n{:?}", log.lines));

    let cfg = with_boot_mounted(&bench.disk.file, |boot| {
        std::fs::read_to_string(boot.join("grub/grub.cfg")).unwrap()
    });
    assert_eq!(
        cfg,
        inject_talos_config(&image.grub_cfg, CONFIG_URL).unwrap()
    );
    let kernel_lines: Vec<_> = cfg
        .lines()
        .filter(|l| l.trim_start().starts_with("linux "))
        .collect();
    assert_eq!(kernel_lines.len(), 3);
    for line in kernel_lines {
        assert!(
            line.ends_with(r" talos.config=https://tm.example/config?uuid=\$\{uuid\}"),
            "{line}"
        );
        assert_eq!(line.matches("talos.config=").count(), 1, "{line}");
    }
    // Every other line is as it was.
    let others = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.contains("linux "))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(others(&cfg), others(&image.grub_cfg));
    // Outside the BOOT partition the disk holds exactly the image.
    let (start, size) = partition(&bench.disk.file, "BOOT");
    let (start, end) = (start as usize, (start + size) as usize);
    let disk = bench.disk.contents();
    assert!(disk[..start] == image.raw[..start]);
    assert!(disk[end..image.raw.len()] == image.raw[end..]);
    assert!(bench.sshd.stubs.rebooted());
    // The BOOT partition's loop device and mount were cleaned up.
    let leftover = super::harness::sh(&format!(
        "losetup -n -O NAME -j {}",
        bench.disk.file.display()
    ));
    assert_eq!(
        leftover.trim(),
        bench.disk.path(),
        "installer left loop devices attached"
    );
}

#[tokio::test]
async fn a_missing_image_fails_the_write_step_and_a_retry_succeeds() {
    let image = image();
    let bench = bench().await;
    let missing = format!("{}/talos/missing.raw.zst", bench.http.base_url);
    let (log, result) = run(
        &bench.session,
        &plan(&request(&bench.disk, ImageSource::Custom { url: missing })),
    )
    .await;
    let error = result.unwrap_err();
    let InstallError::StepFailed {
        step,
        command,
        exit,
        stderr_tail,
    } = &error
    else {
        panic!("unexpected error {error:?}");
    };
    assert_eq!(step, "write the Talos image");
    assert!(command.contains("/talos/missing.raw.zst"), "{command}");
    assert_ne!(*exit, Exit::Status(0));
    assert!(
        stderr_tail.iter().any(|l| l.contains("404")),
        "{stderr_tail:?}"
    );
    assert!(error.to_string().contains("404"), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("step `write the Talos image` failed: `"),
        "{error}"
    );
    assert!(!log.steps.contains(&"reboot into Talos".to_owned()));
    assert!(
        !bench.sshd.stubs.rebooted(),
        "rebooted after a failed write"
    );

    // Retry with the right URL.
    let url = bench
        .http
        .put("/talos/metal-amd64.raw.zst", image.zst.clone());
    let (log, result) = run(
        &bench.session,
        &plan(&request(&bench.disk, ImageSource::Custom { url })),
    )
    .await;
    result.unwrap_or_else(|e| panic!("{e}\n{:?}", log.lines));
    assert!(bench.sshd.stubs.rebooted());
}

#[tokio::test]
async fn an_image_without_grub_cfg_points_to_image_factory() {
    let bench = bench().await;
    // A raw image without a partition table at all.
    let url = bench.http.put("/talos/blank.raw", vec![0u8; 1 << 20]);
    let (_, result) = run(
        &bench.session,
        &plan(&request(&bench.disk, ImageSource::Custom { url })),
    )
    .await;
    let error = result.unwrap_err();
    assert!(
        matches!(error, InstallError::BootPartitionMissing { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("Image Factory schematic"),
        "{error}"
    );
    assert!(!bench.sshd.stubs.rebooted());
}

#[tokio::test]
async fn a_connection_cut_mid_write_stops_the_pipeline_and_a_retry_succeeds() {
    let image = image();
    let bench = bench().await;
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(dir.path(), "key", "-t ed25519");
    let sshd = Sshd::start(&[&key]);
    let proxy = CuttableProxy::start(sshd.port);
    let mut target = sshd.target(&key);
    target.port = proxy.port;
    let session = SshSession::connect(&target).await.unwrap();
    // About 6 s for the whole image: long enough to cut in the middle.
    let url = bench.http.put_slow(
        "/talos/slow.raw.zst",
        image.zst.clone(),
        image.zst.len() / 6,
    );
    let plan = plan(&request(&bench.disk, ImageSource::Custom { url }));
    let mut cut = false;
    let result = install(&session, &plan, &mut |event: InstallEvent<'_>| {
        if matches!(event, InstallEvent::Progress(_)) && !cut {
            proxy.cut();
            cut = true;
        }
    })
    .await;
    let error = result.unwrap_err();
    assert!(cut, "no progress before the end: {error}");
    match &error {
        InstallError::StepFailed { step, exit, .. } => {
            assert_eq!(step, "write the Talos image");
            assert_eq!(*exit, Exit::Disconnected);
        }
        InstallError::Shell { step, .. } => assert_eq!(step, "write the Talos image"),
        other => panic!("unexpected error {other:?}"),
    }
    assert!(!sshd.stubs.rebooted());
    // The remote pipeline stops: the download ends long before the slow body would.
    downloads_end(&bench.http, 4, "after the connection was cut").await;
    // A retry over a new connection succeeds.
    let url = bench
        .http
        .put("/talos/metal-amd64.raw.zst", image.zst.clone());
    let plan = super::install::plan(&request(&bench.disk, ImageSource::Custom { url }));
    let session = SshSession::connect(&sshd.target(&key)).await.unwrap();
    let (log, result) = run(&session, &plan).await;
    result.unwrap_or_else(|e| panic!("{e}\n{:?}", log.lines));
    assert!(sshd.stubs.rebooted());
}

#[tokio::test]
async fn cancelling_the_install_stops_the_remote_pipeline() {
    let image = image();
    let bench = bench().await;
    let url = bench.http.put_slow(
        "/talos/slow.raw.zst",
        image.zst.clone(),
        image.zst.len() / 6,
    );
    let plan = plan(&request(&bench.disk, ImageSource::Custom { url }));
    // Cancel (drop the future) at the first progress event of the image write.
    let (started, mut writing) = tokio::sync::watch::channel(false);
    let mut sink = move |event: InstallEvent<'_>| {
        if matches!(event, InstallEvent::Progress(_)) {
            let _ = started.send(true);
        }
    };
    tokio::select! {
        result = install(&bench.session, &plan, &mut sink) => {
            panic!("the install ended before it was cancelled: {result:?}")
        }
        _ = writing.wait_for(|&w| w) => {}
    }
    downloads_end(&bench.http, 3, "after the install was cancelled").await;
    assert!(!bench.sshd.stubs.rebooted());
}

#[tokio::test]
async fn a_stalled_download_fails_the_write_step_and_stops() {
    let image = image();
    let bench = bench().await;
    // 20 bytes a second: dd never completes a block, so nothing is printed.
    let url = bench
        .http
        .put_slow("/talos/stalled.raw.zst", image.zst.clone(), 20);
    let mut plan = plan(&request(&bench.disk, ImageSource::Custom { url }));
    for step in &mut plan.steps {
        if let Action::WriteImage { stall_timeout, .. } = &mut step.action {
            *stall_timeout = std::time::Duration::from_secs(2);
        }
    }
    let (_, result) = run(&bench.session, &plan).await;
    let error = result.unwrap_err();
    assert!(
        matches!(&error, InstallError::Stalled { step, .. } if step == "write the Talos image"),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("printed nothing for 2s"),
        "{error}"
    );
    downloads_end(&bench.http, 3, "after the stall").await;
    assert!(!bench.sshd.stubs.rebooted());
}
