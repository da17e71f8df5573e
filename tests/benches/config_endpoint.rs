//! `GET /config` under load, against nginx serving the same bytes as a static file.
//!
//! Run with `scripts/bench-config`: it installs `wrk` and `nginx-light` from Debian when missing,
//! builds the release binary the container image holds (`cargo build --release --bin
//! talos-manager`) and runs `cargo bench -p talos-manager-e2e --bench config_endpoint` with
//! `TALOS_MANAGER_BIN` pointing at it. Not a test: it prints a table for `docs/performance.md`
//! and asserts nothing about speed.
//!
//! 1. A SQLite database is seeded through the core's `Store` with one cluster, one config and
//!    1,000 configured worker servers; the first one's IPv4 address is 127.0.0.1, so `wrk`'s
//!    requests from loopback are that node asking for its config (no proxy header involved).
//! 2. The real `talos-manager serve` (the release binary) serves it on loopback, with info logs
//!    off as nginx's access log is off.
//! 3. nginx serves the config it answered, byte for byte, as a static file.
//! 4. `wrk` with 64 connections and 2 threads measures each for `ROUNDS` interleaved rounds of
//!    `SECONDS` seconds; the table reports the median round, and the load average beside it.
//! 5. One more round asks for every node's config in turn (a fleet booting behind a proxy that
//!    names each node in `X-Forwarded-For`), and the service's memory is read from `/proc`
//!    at start and at the end, after a `GET /api/v1/servers`. `BENCH_SERVERS=10000` seeds
//!    10,000 servers instead of 1,000.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use talos_manager_core::Architecture;
use talos_manager_core::store::{
    ClusterFields, ConfigFields, MachineConfigFields, ServerInventory,
};
use talos_manager_core::{EncryptionKey, ProviderKind, Store};

/// Servers seeded, unless `BENCH_SERVERS` says otherwise.
const DEFAULT_SERVERS: usize = 1_000;

fn servers() -> usize {
    std::env::var("BENCH_SERVERS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(DEFAULT_SERVERS)
}
const CONNECTIONS: &str = "64";
const SECONDS: u64 = 10;
const ROUNDS: usize = 3;

/// Stops a child process when dropped: SIGTERM, so that nginx's master stops its workers too.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A plain HTTP/1.0 GET on loopback: status code and body.
fn get(port: u16, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let split = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("no status")?;
    Ok((status, answer[split + 4..].to_vec()))
}

fn wait_for(port: u16, path: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if matches!(get(port, path), Ok((200, _))) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("nothing answered 200 on 127.0.0.1:{port}{path} within 30 s")
}

async fn seed(data_dir: &Path, key: &EncryptionKey) -> anyhow::Result<()> {
    let url = format!("sqlite://{}", data_dir.join("talos-manager.db").display());
    let store = Store::connect(&url, key).await?;
    store.migrate().await?;
    let account = store
        .create_provider_account(
            ProviderKind::HetznerRobot,
            "bench",
            &talos_manager_core::Secret::new("unused".to_owned()),
        )
        .await?;
    let secrets =
        tokio::task::spawn_blocking(|| talos_manager_core::clusters::cluster_secrets(None))
            .await??;
    let cluster = store
        .create_cluster(
            &ClusterFields {
                name: "bench".into(),
                endpoint: "https://bench.example.com:6443".into(),
                vswitch_id: None,
            },
            &secrets,
        )
        .await?;
    let config = store
        .create_config(&ConfigFields {
            name: "default".into(),
            install_image: "ghcr.io/siderolabs/installer:v1.10.4".into(),
            kubernetes_version: "1.30.1".into(),
            kubespan: true,
            patch: include_str!("../../docs/recipes/baseline.yaml").into(),
            patch_control_plane: String::new(),
            patch_worker: include_str!("../../docs/recipes/openebs-localpv.yaml").into(),
        })
        .await?;
    for index in 0..servers() {
        let number = index + 1;
        let ipv4 = if index == 0 {
            "127.0.0.1".to_owned()
        } else {
            format!("127.18.{}.{}", index / 250, index % 250 + 1)
        };
        let inventory = ServerInventory {
            provider: ProviderKind::HetznerRobot,
            provider_id: (100_000 + number).to_string(),
            name: format!("worker-{number}"),
            ipv4: Some(ipv4),
            ipv6: None,
            product: "AX52".into(),
            data_center: "FSN1-DC16".into(),
            status: "ready".into(),
            cancelled: false,
            architecture: Architecture::Amd64,
            vswitch_id: None,
        };
        let (server, _) = store.upsert_server(account.id, &inventory).await?;
        store
            .update_server_assignment(server.id, &inventory.name, Some(cluster.id), None, None)
            .await?;
        store
            .put_machine_config(
                server.id,
                &MachineConfigFields {
                    config_id: config.id,
                    hostname: format!("worker-{number}"),
                    private_ip: format!("10.0.{}.{}", 1 + index / 250, index % 250 + 1),
                    install_disk: "/dev/nvme0n1".into(),
                    ephemeral_disk_identifier: None,
                },
            )
            .await?;
    }
    store.close().await;
    Ok(())
}

/// One `wrk` run: requests per second, the 99th percentile latency in milliseconds, and how
/// many requests timed out.
fn wrk(port: u16, seconds: u64) -> anyhow::Result<(f64, f64, u64)> {
    wrk_with(port, seconds, None)
}

/// [`wrk`] with an optional Lua script that shapes the requests.
fn wrk_with(port: u16, seconds: u64, script: Option<&Path>) -> anyhow::Result<(f64, f64, u64)> {
    let mut command = Command::new("wrk");
    command.args([
        "-t2",
        "-c",
        CONNECTIONS,
        "-d",
        &format!("{seconds}s"),
        "--latency",
    ]);
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command
        .arg(format!("http://127.0.0.1:{port}/config"))
        .output()
        .context("running wrk (scripts/bench-config installs it)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "wrk failed:\n{text}");
    // Answers other than 200 make the comparison meaningless; timeouts (wrk gives up on a
    // request after 2 s) are reported with the numbers instead.
    ensure!(!text.contains("Non-2xx"), "wrk saw failed answers:\n{text}");
    let timeouts: u64 = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Socket errors:"))
        .and_then(|errors| errors.rsplit("timeout").next())
        .map_or(Ok(0), |count| count.trim().parse())?;
    let requests_per_second = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Requests/sec:"))
        .context("no Requests/sec")?
        .trim()
        .parse()?;
    let p99 = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("99%"))
        .map(str::trim)
        .context("no 99% latency")?;
    Ok((requests_per_second, milliseconds(p99)?, timeouts))
}

/// `wrk`'s durations (`812.00us`, `2.31ms`, `1.02s`) in milliseconds.
fn milliseconds(text: &str) -> anyhow::Result<f64> {
    let (number, factor) = if let Some(us) = text.strip_suffix("us") {
        (us, 0.001)
    } else if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1.0)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1000.0)
    } else {
        bail!("unknown duration {text:?}")
    };
    Ok(number.parse::<f64>()? * factor)
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    Path::new("/proc/self")
        .metadata()
        .is_ok_and(|metadata| metadata.uid() == 0)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

#[allow(clippy::print_stdout, reason = "the table is the benchmark's result")]
fn main() -> anyhow::Result<()> {
    for tool in ["wrk", "nginx"] {
        let found = Command::new("sh")
            .args([
                "-c",
                &format!("command -v {tool} || test -x /usr/sbin/{tool}"),
            ])
            .stdout(Stdio::null())
            .status()?
            .success();
        ensure!(
            found,
            "{tool} is missing: run scripts/bench-config, which installs it"
        );
    }
    let binary = std::env::var_os("TALOS_MANAGER_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/talos-manager")
        });
    ensure!(
        binary.is_file(),
        "{} is missing: run scripts/bench-config, which builds it",
        binary.display()
    );
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir)?;
    let key = EncryptionKey::generate();
    let seeding = Instant::now();
    tokio::runtime::Runtime::new()?.block_on(seed(&data_dir, &key))?;
    println!(
        "seeded {} configured servers in {:.1} s",
        servers(),
        seeding.elapsed().as_secs_f64()
    );

    let service_port = free_port()?;
    let service_process = Running(
        Command::new(&binary)
            .args(["serve", "--listen", &format!("127.0.0.1:{service_port}")])
            .env_clear()
            .env("TALOS_MANAGER_DATA_DIR", &data_dir)
            .env("TALOS_MANAGER_ENCRYPTION_KEY", key.to_base64().expose())
            .env("BASIC_AUTH_PASSWORD", "bench-password")
            .env("SYNC_INTERVAL", "0")
            .env("RUST_LOG", "warn")
            // wrk's fleet round names each node in X-Forwarded-For, as a proxy would.
            .env("TRUSTED_PROXIES", "127.0.0.1")
            .stdout(Stdio::null())
            .spawn()?,
    );
    wait_for(service_port, "/healthz")?;
    let memory_at_start = memory(service_process.0.id())?;
    let (status, config) = get(service_port, "/config")?;
    ensure!(
        status == 200,
        "/config answered {status}: {}",
        String::from_utf8_lossy(&config)
    );

    // nginx serves the same bytes, as a static file with the same content type.
    let www = dir.path().join("www");
    std::fs::create_dir(&www)?;
    std::fs::write(www.join("config"), &config)?;
    let nginx_port = free_port()?;
    let nginx_conf = dir.path().join("nginx.conf");
    std::fs::write(
        &nginx_conf,
        format!(
            "worker_processes auto;\n\
             pid {dir}/nginx.pid;\n\
             error_log {dir}/nginx-error.log;\n\
             {user}\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {dir}/tmp;\n\
               proxy_temp_path {dir}/tmp;\n\
               fastcgi_temp_path {dir}/tmp;\n\
               uwsgi_temp_path {dir}/tmp;\n\
               scgi_temp_path {dir}/tmp;\n\
               server {{\n\
                 listen 127.0.0.1:{nginx_port};\n\
                 root {www};\n\
                 location = /config {{ default_type text/yaml; }}\n\
               }}\n\
             }}\n",
            dir = dir.path().display(),
            www = www.display(),
            // As root, nginx's workers would switch to an unprivileged user that cannot read
            // the private temporary directory.
            user = if is_root() { "user root;\n" } else { "" },
        ),
    )?;
    let nginx = Command::new("nginx")
        .arg("-c")
        .arg(&nginx_conf)
        .args(["-g", "daemon off;"])
        .stderr(Stdio::inherit())
        .spawn()
        .or_else(|_| {
            Command::new("/usr/sbin/nginx")
                .arg("-c")
                .arg(&nginx_conf)
                .args(["-g", "daemon off;"])
                .spawn()
        })?;
    let _nginx = Running(nginx);
    wait_for(nginx_port, "/config")?;
    let (_, static_copy) = get(nginx_port, "/config")?;
    ensure!(static_copy == config, "nginx serves other bytes");

    // Warm both up, then interleave the measured rounds so background load hits both alike.
    wrk(service_port, 2)?;
    wrk(nginx_port, 2)?;
    let (mut service, mut static_file) = (Vec::new(), Vec::new());
    let mut loads = Vec::new();
    for _ in 0..ROUNDS {
        service.push(wrk(service_port, SECONDS)?);
        static_file.push(wrk(nginx_port, SECONDS)?);
        loads.push(load_average());
    }
    let rps = |runs: &[(f64, f64, u64)]| median(runs.iter().map(|run| run.0).collect());
    let p99 = |runs: &[(f64, f64, u64)]| median(runs.iter().map(|run| run.1).collect());
    println!(
        "\n{} bytes per answer; {ROUNDS} rounds of {SECONDS} s, {CONNECTIONS} connections, 2 wrk threads; median round\n",
        config.len()
    );
    println!("| server | requests/s | p99 |");
    println!("| --- | --- | --- |");
    println!(
        "| talos-manager `/config` | {:.0} | {:.2} ms |",
        rps(&service),
        p99(&service)
    );
    println!(
        "| nginx, the same bytes as a static file | {:.0} | {:.2} ms |",
        rps(&static_file),
        p99(&static_file)
    );
    println!(
        "\ntalos-manager / nginx: {:.2}x; every round (rps, p99 ms, timeouts): talos-manager {service:?}, nginx {static_file:?}",
        rps(&service) / rps(&static_file)
    );
    println!("load average after each round: {}", loads.join("; "));

    // The fleet: every node but the first in turn, each named by X-Forwarded-For, as when a
    // whole fleet boots behind a proxy: the cache holds every node, and each node's request
    // time is written once a second.
    let script = dir.path().join("fleet.lua");
    std::fs::write(&script, fleet_script(servers()))?;
    let fleet = wrk_with(service_port, SECONDS, Some(&script))?;
    println!(
        "\nthe fleet, {} nodes in turn behind a trusted proxy: {:.0} requests/s, p99 {:.2} ms, {} timeouts; load average {}",
        servers() - 1,
        fleet.0,
        fleet.1,
        fleet.2,
        load_average()
    );

    let listed = list_servers(service_port)?;
    println!(
        "\nservice memory (VmRSS / VmHWM) with {} servers: at start {memory_at_start}; after the rounds and GET /api/v1/servers ({} bytes) {}",
        servers(),
        listed,
        memory(service_process.0.id())?
    );
    Ok(())
}

/// A wrk script that asks for the config of node 1, 2, … in turn, each from its address.
fn fleet_script(servers: usize) -> String {
    format!(
        "local i = 0\n\
         request = function()\n\
           i = i % ({servers} - 1) + 1\n\
           local address = \"127.18.\" .. math.floor(i / 250) .. \".\" .. (i % 250 + 1)\n\
           return wrk.format(\"GET\", \"/config\", {{[\"X-Forwarded-For\"] = address}})\n\
         end\n"
    )
}

/// `GET /api/v1/servers` with the bench's password: the size of the answer.
fn list_servers(port: u16) -> anyhow::Result<usize> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    // "admin:bench-password" (the service's BASIC_AUTH_PASSWORD above) in base64.
    write!(
        stream,
        "GET /api/v1/servers HTTP/1.0\r\nHost: localhost\r\nAuthorization: Basic YWRtaW46YmVuY2gtcGFzc3dvcmQ=\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    ensure!(
        answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200"),
        "GET /api/v1/servers failed: {}",
        String::from_utf8_lossy(&answer[..answer.len().min(300)])
    );
    Ok(answer.len())
}

/// The process's resident and peak resident memory, as `/proc/PID/status` tells them.
fn memory(pid: u32) -> anyhow::Result<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|value| value.trim().to_owned())
            .unwrap_or_else(|| "?".to_owned())
    };
    Ok(format!("{} / {}", field("VmRSS:"), field("VmHWM:")))
}
