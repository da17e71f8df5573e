//! The bodies of the fuzz targets in `fuzz/`, kept here so the regression tests in
//! `tests/core/fuzz_regressions.rs` replay every saved input through exactly the same code.
//!
//! Each function takes arbitrary bytes and checks properties that must hold for any input; a
//! panic (from the code under test or from a property) is a finding. Inputs that are not UTF-8
//! are ignored: everything fuzzed here reads text.

use std::net::IpAddr;

use crate::installer::{check_smbios_uuid, parse_dd_progress, parse_lsblk};
use crate::node_config::{ConfigRequest, ServerLookup, TrustedProxies};
use crate::talos::{
    MachineConfig, Patch, SecretsBundle, Substitutions, ValidationMode, substitute,
    unknown_variables, validate,
};

/// A complete worker config, as talosctl generates it, for patches to apply to.
const BASE_CONFIG: &str = include_str!("../../tests/data/talos/stability/v1.10/base-worker.yaml");

/// A fuzz target's body: takes any bytes, panics on a finding.
pub type FuzzTarget = fn(&[u8]);

/// The fuzz targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/regressions/<name>/`
/// call them.
pub const TARGETS: &[(&str, FuzzTarget)] = &[
    ("machine_config", machine_config),
    ("patch", patch),
    ("secrets_bundle", secrets_bundle),
    ("rescue_output", rescue_output),
    ("config_request", config_request),
];

/// A machine config loads or is refused; one that loads survives a round trip through YAML
/// unchanged, and validating any text never panics.
pub fn machine_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = validate(text, ValidationMode::Metal, true);
    if let Ok(config) = MachineConfig::parse(text) {
        let yaml = config.to_yaml();
        let again = MachineConfig::parse(&yaml)
            .unwrap_or_else(|error| panic!("our own output does not load: {error}\n{yaml}"));
        assert_eq!(again.to_yaml(), yaml, "a round trip changes the config");
    }
}

/// Any text is a patch or refused with an error; a patch that applies to a generated config
/// leaves a config that still loads.
pub fn patch(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(patch) = Patch::parse(text) else {
        return;
    };
    let mut config = MachineConfig::parse(BASE_CONFIG).expect("the base config loads");
    if config.apply_patch(&patch).is_ok() {
        let yaml = config.to_yaml();
        let _ = validate(&yaml, ValidationMode::Metal, false);
    }
}

/// A secrets bundle loads or is refused; one that loads is written back and loads equal.
pub fn secrets_bundle(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(bundle) = SecretsBundle::parse(text) {
        let yaml = bundle.to_yaml();
        let again = SecretsBundle::parse(&yaml)
            .unwrap_or_else(|error| panic!("our own bundle does not load: {error}"));
        assert!(again == bundle, "a round trip changes the bundle");
    }
}

/// What a rescue system prints (lsblk JSON, dd progress lines, dmidecode's UUID) and the
/// `${...}` substitution of patches: parsed without panicking whatever the host sends.
pub fn rescue_output(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(devices) = parse_lsblk(text) {
        for device in devices {
            let _ = (device.path(), device.wwid());
        }
    }
    for line in text.lines() {
        let _ = parse_dd_progress(line, Some(1 << 30));
        let _ = parse_dd_progress(line, None);
        let _ = check_smbios_uuid(line, [("robot-1", line)]);
    }
    let vars = Substitutions::new()
        .hostname("worker-1")
        .private_ip("10.0.1.1");
    let _ = unknown_variables(text, &vars);
    let substituted = substitute(text, &vars);
    assert!(
        unknown_variables(&substituted, &vars).is_empty() || substituted.contains("${"),
        "a text without placeholders has no unknown variable"
    );
}

/// A `/config` request as four lines: the query string, the peer address, the
/// `X-Forwarded-For` header lines separated by `|`, `TRUSTED_PROXIES` (missing lines: none,
/// `203.0.113.7`, none, none). Whatever a node or a proxy sends, the request is read; the
/// source is the peer unless the peer is a trusted proxy, then an untrusted address written
/// in one of the forwarded lines; a UUID is trimmed, never empty and never an unfilled
/// `${…}`, and the lookup uses it in lower case.
pub fn config_request(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let query = lines.next().unwrap_or_default();
    let peer: IpAddr = lines
        .next()
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or(IpAddr::from([203, 0, 113, 7]));
    let forwarded_for: Vec<&str> = lines
        .next()
        .map(|line| line.split('|').collect())
        .unwrap_or_default();
    let trusted = lines
        .next()
        .and_then(|line| TrustedProxies::parse(line).ok())
        .unwrap_or_default();
    let request = ConfigRequest::parse(query, peer, &forwarded_for, &trusted);
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    };
    if request.source != canonical(peer) {
        assert!(
            trusted.contains(canonical(peer)),
            "only a trusted peer names another client"
        );
        assert!(
            !trusted.contains(request.source),
            "the source {} is a trusted proxy",
            request.source
        );
        let written = forwarded_for
            .iter()
            .flat_map(|line| line.split(','))
            .any(|hop| {
                let hop = hop.trim();
                let source = request.source.to_string();
                hop.contains(&source)
                    || hop.parse::<IpAddr>().ok().map(canonical) == Some(request.source)
                    || hop
                        .trim_start_matches('[')
                        .split(']')
                        .next()
                        .and_then(|inside| inside.parse::<IpAddr>().ok())
                        .map(canonical)
                        == Some(request.source)
                    || hop
                        .rsplit_once(':')
                        .and_then(|(address, _)| address.parse::<IpAddr>().ok())
                        .map(canonical)
                        == Some(request.source)
            });
        assert!(
            written,
            "the source {} is neither the peer nor a forwarded hop",
            request.source
        );
    }
    match (&request.uuid, request.lookup()) {
        (Some(uuid), ServerLookup::Uuid(looked_up)) => {
            assert!(!uuid.is_empty() && uuid.trim() == uuid && !uuid.contains("${"));
            assert_eq!(looked_up, uuid.to_ascii_lowercase());
        }
        (None, ServerLookup::Ipv4(address)) => assert_eq!(address, request.source.to_string()),
        (uuid, lookup) => panic!("uuid {uuid:?} looked up as {lookup:?}"),
    }
}
