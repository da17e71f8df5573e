//! Image-writing throughput through the installer (sshd on loopback, wget | zstd | dd on a loop
//! device) against a plain local `zstd -d | dd` of the same image, and against the same
//! download pipeline run locally (which isolates the cost of SSH). Not a test: it prints numbers.
//!
//! Run: `cargo bench -p talos-manager-core --bench installer_write` (as root, with the tools
//! of the installer tests; `BENCH_IMAGE_MIB` sets the image size, 512 by default, and
//! `BENCH_RUNS` the runs of each, 5 by default).
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use talos_manager_core::Architecture;
use talos_manager_core::installer::{
    BlockDevice, BootstrapRequest, ImageSource, InstallEvent, SshSession, install, plan,
};
use talos_manager_rescue_host::{HttpServer, KeyPair, LoopDisk, Sshd, sh};

fn main() {
    let mib: u64 = std::env::var("BENCH_IMAGE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let bytes = mib << 20;
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("metal-amd64.raw");
    // Like a real image: a quarter of pseudo-random data (the system), the rest zeros.
    let mut data = vec![0u8; bytes as usize];
    let mut x: u64 = 0x2545f4914f6cdd1d;
    for chunk in data[..(bytes / 4) as usize].chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&raw, &data).unwrap();
    drop(data);
    sh(&format!("zstd -q -T0 -3 -f {0} -o {0}.zst", raw.display()));
    let zst_path = raw.with_extension("raw.zst");
    let zst = std::fs::read(&zst_path).unwrap();
    println!(
        "image: {mib} MiB raw, {:.1} MiB zstd",
        zst.len() as f64 / 1048576.0
    );

    let disk = LoopDisk::new(bytes + (16 << 20));
    let device = disk.path().to_owned();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (local, local_download, through_installer) = runtime.block_on(async {
        let key = KeyPair::generate(dir.path(), "key", "-t ed25519");
        let sshd = Sshd::start(&[&key]);
        let http = HttpServer::start();
        let url = http.put("/image/bench/v1.10.4/metal-amd64.raw.zst", zst);
        let session = SshSession::connect(&sshd.target(&key)).await.unwrap();
        let request = BootstrapRequest {
            server: "bench".into(),
            disk: BlockDevice {
                name: device.trim_start_matches("/dev/").to_owned(),
                kind: "loop".into(),
                size: bytes,
                uuid: None,
                model: None,
                wwn: None,
                raid_arrays: Vec::new(),
                partitions: 0,
            },
            image: ImageSource::Factory {
                base_url: http.base_url.clone(),
                schematic: "bench".into(),
                version: "v1.10.4".into(),
                architecture: Architecture::Amd64,
            },
            talos_config_url: "https://tm.example/config?uuid=${uuid}".into(),
            image_size: Some(bytes),
        };
        let mut plan = plan(&request);
        // Only the write and the sync: what the local pipelines do.
        plan.steps
            .retain(|s| s.name == "write the Talos image" || s.name == "flush the disk");
        let time = |command: String| {
            let start = Instant::now();
            sh(&command);
            start.elapsed()
        };
        // Interleaved, so that load from other processes hits all three alike.
        let (mut local, mut download, mut installer) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            local.push(time(format!(
                "zstd -d -c {} | dd of={device} bs=4M iflag=fullblock status=none && sync",
                zst_path.display()
            )));
            download.push(time(format!(
                "wget -q -O - {url} | zstd -d -c | dd of={device} bs=4M iflag=fullblock status=none && sync"
            )));
            let start = Instant::now();
            install(&session, &plan, &mut |_: InstallEvent<'_>| {})
                .await
                .unwrap();
            installer.push(start.elapsed());
        }
        (local, download, installer)
    });

    let rate = |d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    let best = |runs: &[Duration]| runs.iter().copied().min().unwrap();
    let median = |runs: &[Duration]| {
        let mut sorted = runs.to_vec();
        sorted.sort();
        sorted[sorted.len() / 2]
    };
    for (name, runs) in [
        ("local wget | zstd -d | dd", &local_download),
        ("local zstd -d | dd", &local),
        ("installer over SSH", &through_installer),
    ] {
        println!(
            "{name:>26}: best {:7.1} MB/s, median {:7.1} MB/s ({:?})",
            rate(best(runs)),
            rate(median(runs)),
            runs
        );
    }
    let ratio =
        |base: &[Duration]| median(base).as_secs_f64() / median(&through_installer).as_secs_f64();
    println!(
        "ratio installer / local zstd -d | dd (median): {:.2}",
        ratio(&local)
    );
    println!(
        "ratio installer / local wget | zstd -d | dd (median): {:.2}",
        ratio(&local_download)
    );
}
