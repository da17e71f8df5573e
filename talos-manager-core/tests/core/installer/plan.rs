//! Plans are pure: the dry run of a bootstrap, checked against golden files in
//! `tests/data/installer/` (regenerate with `UPDATE_GOLDEN=1`).

use talos_manager_core::Architecture;
use talos_manager_core::installer::{BootstrapRequest, ImageSource, parse_lsblk, plan};

use super::harness::DATA;

fn check_golden(name: &str, actual: &str) {
    let path = std::path::Path::new(DATA).join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        actual, expected,
        "{name} differs (UPDATE_GOLDEN=1 rewrites it)"
    );
}

fn request(image: ImageSource) -> BootstrapRequest {
    let lsblk = std::fs::read_to_string(format!("{DATA}/lsblk.json")).unwrap();
    let disks = parse_lsblk(&lsblk).unwrap();
    let disk = disks
        .iter()
        .find(|d| d.wwid().as_deref() == Some("eui.36344830544106740025384500000002"))
        .unwrap()
        .clone();
    BootstrapRequest {
        server: "worker-1".into(),
        disk,
        image,
        talos_config_url: "https://tm.example/config?uuid=${uuid}".into(),
        image_size: None,
    }
}

#[test]
fn dry_run_of_an_image_factory_bootstrap_on_a_raid_member() {
    let plan = plan(&request(ImageSource::Factory {
        base_url: "https://factory.talos.dev".into(),
        schematic: "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba".into(),
        version: "v1.10.4".into(),
        architecture: Architecture::Amd64,
    }));
    check_golden("plan-factory.txt", &plan.to_string());
}

#[test]
fn dry_run_of_a_custom_image_with_grub_injection() {
    let plan = plan(&request(ImageSource::Custom {
        url: "https://images.example/talos v1.9/metal-amd64.raw.xz".into(),
    }));
    check_golden("plan-custom.txt", &plan.to_string());
}
