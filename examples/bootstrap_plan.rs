//! Prints the dry run of a bootstrap: the disks a rescue system reported (`lsblk --json`), the
//! disk chosen by its WWID, and the exact commands the installer would run on it.
//!
//! Run: `cargo run -p talos-manager-examples --example bootstrap_plan [LSBLK_JSON_FILE [WWID]]`
//! (default: the lsblk output of a Hetzner rescue system with an md RAID 0, and its first NVMe
//! disk that is a RAID member).

// Printing the plan is what this program is for.
#![allow(clippy::print_stdout)]

use anyhow::Context as _;
use talos_manager_core::Architecture;
use talos_manager_core::installer::{BootstrapRequest, ImageSource, parse_lsblk, plan};

const RESCUE_LSBLK: &str = include_str!("../talos-manager-core/tests/data/installer/lsblk.json");

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let lsblk = match args.next() {
        Some(path) => std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?,
        None => RESCUE_LSBLK.to_owned(),
    };
    let wwid = args
        .next()
        .unwrap_or_else(|| "eui.36344830544106740025384500000002".into());
    let disks = parse_lsblk(&lsblk).context("read the lsblk JSON")?;
    for disk in &disks {
        println!(
            "{:8} {:5} {:>15} bytes  {:40} {}",
            disk.name,
            disk.kind,
            disk.size,
            disk.wwid().unwrap_or_default(),
            if disk.raid_arrays.is_empty() {
                String::new()
            } else {
                format!("RAID {}", disk.raid_arrays.join(", "))
            }
        );
    }
    let disk = disks
        .iter()
        .find(|d| d.wwid().as_deref() == Some(wwid.as_str()))
        .with_context(|| format!("no disk with WWID {wwid}"))?;
    let request = BootstrapRequest {
        server: "worker-1".into(),
        disk: disk.clone(),
        // With TALOS_IMAGE_FACTORY_URL and the schematic holding the talos.config kernel argument.
        image: ImageSource::Factory {
            base_url: "https://factory.talos.dev".into(),
            schematic: "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba".into(),
            version: "v1.10.4".into(),
            architecture: Architecture::Amd64,
        },
        talos_config_url: "https://talos-manager.example/config?uuid=${uuid}".into(),
        image_size: None,
    };
    println!("\n{}", plan(&request));
    Ok(())
}
