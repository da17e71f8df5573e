//! The test guard on outgoing connections: under test, the service contacts nothing outside
//! loopback.
//!
//! Every place that opens a connection to a server, a node or an API (the SSH session of the
//! prober and the installer, the Talos API connector, the Kubernetes client, the Hetzner and
//! Image Factory clients) calls [`enforce_host`] (or [`check_url`]) with its target first. The guard is active when the
//! crate is built with the `testing` feature (every test build of the workspace is) or when
//! `TALOS_MANAGER_LOOPBACK_ONLY=1` is in the environment (the harnesses that run the real
//! binaries set it). An active guard lets only `127.0.0.0/8`, `::1` and `localhost` through; any
//! other target prints a loud message with a backtrace and aborts the process, so the test run
//! fails however deep in a background job the connection was attempted. In production the guard
//! is inactive and costs one load of a cached flag.

use std::net::IpAddr;
use std::sync::OnceLock;

/// The environment variable that turns the guard on outside test builds.
pub const LOOPBACK_ONLY_ENV: &str = "TALOS_MANAGER_LOOPBACK_ONLY";

/// Whether the guard is on: a `testing` build, or `TALOS_MANAGER_LOOPBACK_ONLY=1`.
pub fn active() -> bool {
    static ACTIVE: OnceLock<bool> = OnceLock::new();
    *ACTIVE.get_or_init(|| {
        cfg!(feature = "testing")
            || std::env::var(LOOPBACK_ONLY_ENV).is_ok_and(|value| value == "1")
    })
}

/// A target outside loopback, refused under test.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} tried to connect to {target}, which is not a loopback address: under test every \
     address the service contacts must be in 127.0.0.0/8"
)]
pub struct NonLoopbackTarget {
    /// What tried to connect (`SSH`, `Talos API`, `Kubernetes API`, …).
    pub what: &'static str,
    /// The host, address or URL it tried.
    pub target: String,
}

/// Whether `host` (an IP address, `[v6]`, or a host name) is loopback: `127.0.0.0/8`, `::1`,
/// an IPv4-mapped loopback address, or `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// The host part of a URL (`https://host:port/path`), or the text itself when it is none.
fn url_host(target: &str) -> &str {
    let rest = target.split_once("://").map_or(target, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// Checks `target` (a host, an address, `host:port` is not accepted: pass the host) against the
/// guard without acting on the result: `Err` when the guard is active and the host is not
/// loopback.
pub fn check_host(what: &'static str, host: &str) -> Result<(), NonLoopbackTarget> {
    if !active() || is_loopback_host(host) {
        return Ok(());
    }
    Err(NonLoopbackTarget {
        what,
        target: host.to_owned(),
    })
}

/// [`check_host`] for a URL: its host is checked.
pub fn check_url(what: &'static str, url: &str) -> Result<(), NonLoopbackTarget> {
    check_host(what, url_host(url)).map_err(|refused| NonLoopbackTarget {
        target: url.to_owned(),
        ..refused
    })
}

/// Stops the process when the guard refuses: a test must fail loudly, wherever it runs.
fn abort(refused: &NonLoopbackTarget) -> ! {
    use std::io::Write as _;
    // Straight to the process's standard error: the test harness captures `eprintln!` and
    // would lose the message with the process.
    let _ = writeln!(
        std::io::stderr(),
        "\n\n==== talos-manager test guard ====\n{refused}\n{}\n==================================\n",
        std::backtrace::Backtrace::force_capture()
    );
    std::process::abort();
}

/// Called right before connecting to `host`: aborts the process, loudly, when the guard is active
/// and the host is not loopback.
pub fn enforce_host(what: &'static str, host: &str) {
    if let Err(refused) = check_host(what, host) {
        abort(&refused);
    }
}

/// Called right before connecting to `ip`; see [`enforce_host`].
pub fn enforce_ip(what: &'static str, ip: IpAddr) {
    enforce_host(what, &ip.to_string());
}

/// Called right before sending a request to `url`; see [`enforce_host`].
pub fn enforce_url(what: &'static str, url: &str) {
    if let Err(refused) = check_url(what, url) {
        abort(&refused);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_pass_and_others_are_refused() {
        assert!(active(), "the guard is on in test builds");
        for host in [
            "127.0.0.1",
            "127.18.0.5",
            "::1",
            "[::1]",
            "localhost",
            "::ffff:127.0.0.2",
        ] {
            assert_eq!(check_host("SSH", host), Ok(()), "{host}");
        }
        for host in [
            "198.18.0.1",
            "10.0.0.1",
            "2a01:4f8::1",
            "example.com",
            "0.0.0.0",
        ] {
            assert!(check_host("SSH", host).is_err(), "{host}");
        }
        assert_eq!(
            check_url("Kubernetes API", "https://127.10.0.1:6443/version"),
            Ok(())
        );
        assert_eq!(check_url("Hetzner", "http://[::1]:8080/server"), Ok(()));
        let refused = check_url("Kubernetes API", "https://10.0.0.1:6443/version").unwrap_err();
        assert_eq!(refused.target, "https://10.0.0.1:6443/version");
        assert!(refused.to_string().contains("not a loopback address"));
        assert!(check_url("Hetzner", "https://robot-ws.your-server.de/server").is_err());
    }
}
