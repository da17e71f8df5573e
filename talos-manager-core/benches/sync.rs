//! Fleet sync of 1,000 servers (500 Robot, 500 Cloud, on the wire-level fakes) of which 100 answer
//! the SSH probe, on SQLite and on PostgreSQL. Not a test: it prints numbers.
//!
//! The 100 answering servers have the addresses 127.0.0.1 to 127.0.0.100, where the sshds of the
//! installer's bench listen (rescue systems with stub `hostname`, `dmidecode` and `lsblk`); the
//! other 900 have addresses in 127.0.1.x and 127.0.2.x, where nothing listens, like servers that
//! run Talos or are off. Each run starts on a fresh database: the first sync adds every server,
//! the second updates them. Both probe every server.
//!
//! Run: `cargo bench -p talos-manager-core --bench sync` (PostgreSQL on 127.0.0.1:5432 and
//! Debian's sshd, as for the tests; `BENCH_RUNS` sets the runs per backend, 3 by default, and
//! `BENCH_BACKEND=sqlite` or `postgres` runs one backend only).
#![allow(clippy::print_stdout)]

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use talos_manager_core::ProviderKind;
use talos_manager_core::sync::{ProviderFactory, ServerProber, SshProber, SyncReport, sync_all};
use talos_manager_core::testing::TestDatabase;
use talos_manager_core::{Backend, Secret};
use talos_manager_fake_hetzner::{CloudServer, FakeCloud, FakeRobot, RobotServer};
use talos_manager_rescue_host::{KeyPair, Sshd};

const SERVERS_PER_PROVIDER: u64 = 500;
/// Every tenth server answers the probe: 100 of 1,000.
const ANSWERING_EVERY: u64 = 10;

/// The address of the `index`-th server (0..1000): 127.0.0.1–100 for those that answer.
fn address(index: u64) -> Ipv4Addr {
    if index.is_multiple_of(ANSWERING_EVERY) {
        Ipv4Addr::new(127, 0, 0, (index / ANSWERING_EVERY + 1) as u8)
    } else {
        Ipv4Addr::new(127, 0, 1 + (index % 2) as u8, (index % 250 + 1) as u8)
    }
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate(dir.path(), "key", "-t ed25519");
        // One sshd listens on 16 addresses at most: seven share the port.
        let answering: Vec<Ipv4Addr> = (1..=100).map(|n| Ipv4Addr::new(127, 0, 0, n)).collect();
        let mut chunks = answering.chunks(Sshd::MAX_ADDRESSES);
        let sshd = Sshd::start_on(&[&key], chunks.next().unwrap());
        let _more_sshds: Vec<Sshd> = chunks
            .map(|addresses| Sshd::start_at(&[&key], addresses, sshd.port))
            .collect();
        let robot = FakeRobot::start_empty().await.unwrap();
        let cloud = FakeCloud::start_empty().await.unwrap();
        for index in 0..SERVERS_PER_PROVIDER {
            robot.add_server(RobotServer {
                ip: Some(address(index).to_string()),
                ..RobotServer::new(100_000 + index, &format!("robot-{index}"))
            });
            let cloud_index = SERVERS_PER_PROVIDER + index;
            cloud.add_server(CloudServer {
                ipv4: Some(address(cloud_index).to_string()),
                ..CloudServer::new(200_000 + index, &format!("cloud-{index}"))
            });
        }
        let factory = ProviderFactory::new(robot.url(), cloud.url());
        let prober: Arc<dyn ServerProber> =
            Arc::new(SshProber::new(key.private.clone(), sshd.port).unwrap());
        println!(
            "1,000 servers (500 Robot, 500 Cloud), 100 answering the probe; {runs} run(s) per \
             backend; debug={}",
            cfg!(debug_assertions)
        );
        let backends: Vec<Backend> = match std::env::var("BENCH_BACKEND").as_deref() {
            Ok("sqlite") => vec![Backend::Sqlite],
            Ok("postgres") => vec![Backend::Postgres],
            _ => vec![Backend::Sqlite, Backend::Postgres],
        };
        for backend in backends {
            let mut first = Vec::new();
            let mut second = Vec::new();
            let mut inventory_only = Vec::new();
            for _ in 0..runs {
                let database = TestDatabase::new(backend).await;
                let store = database.store();
                add_accounts(store).await;
                first.push(timed(sync_all(store, &factory, Some(prober.clone()))).await);
                second.push(timed(sync_all(store, &factory, Some(prober.clone()))).await);
                inventory_only.push(timed(sync_all(store, &factory, None)).await);
            }
            // The probe alone, of the 100 answering servers, at BENCH_CONCURRENCY at a time.
            let concurrency: usize = std::env::var("BENCH_CONCURRENCY")
                .ok()
                .and_then(|value| value.parse().ok())
                .unwrap_or(talos_manager_core::sync::DEFAULT_PROBE_CONCURRENCY);
            let database = TestDatabase::new(backend).await;
            let store = database.store();
            add_accounts(store).await;
            sync_all(store, &factory, None).await.unwrap();
            let answering_servers: Vec<_> = store
                .list_servers()
                .await
                .unwrap()
                .into_iter()
                .filter(|server| {
                    server
                        .inventory
                        .ipv4
                        .as_deref()
                        .is_some_and(|ip| ip.starts_with("127.0.0."))
                })
                .collect();
            let started = Instant::now();
            let summary = talos_manager_core::sync::probe_servers(
                store,
                prober.clone(),
                answering_servers,
                concurrency,
            )
            .await
            .unwrap();
            println!(
                "{:<8} probe of the 100 answering servers, {concurrency} at a time: {:.2?}: {summary}",
                backend.as_str(),
                started.elapsed()
            );
            report(backend, "first sync + probe (1,000 added)", &first);
            report(backend, "second sync + probe (1,000 updated)", &second);
            report(
                backend,
                "sync without probe (1,000 updated)",
                &inventory_only,
            );
        }
    });
}

async fn add_accounts(store: &talos_manager_core::Store) {
    store
        .create_provider_account(
            ProviderKind::HetznerRobot,
            FakeRobot::USER,
            &Secret::new(FakeRobot::PASSWORD.to_owned()),
        )
        .await
        .unwrap();
    store
        .create_provider_account(
            ProviderKind::HetznerCloud,
            "project",
            &Secret::new(FakeCloud::TOKEN.to_owned()),
        )
        .await
        .unwrap();
}

async fn timed(
    sync: impl Future<Output = Result<SyncReport, talos_manager_core::StoreError>>,
) -> (Duration, SyncReport) {
    let started = Instant::now();
    let report = sync.await.unwrap();
    (started.elapsed(), report)
}

fn report(backend: Backend, what: &str, runs: &[(Duration, SyncReport)]) {
    if runs.is_empty() {
        return;
    }
    let mut times: Vec<Duration> = runs.iter().map(|(elapsed, _)| *elapsed).collect();
    times.sort();
    let (_, last) = runs.last().unwrap();
    assert!(last.failures.is_empty(), "{last}");
    let reachable = last.probe.as_ref().map_or("-".to_owned(), |summary| {
        let reasons: Vec<String> = summary
            .failures
            .iter()
            .map(|(reason, group)| format!("{reason}: {}", group.count))
            .collect();
        format!("{} ({})", summary.reachable, reasons.join(", "))
    });
    println!(
        "{:<8} {what:<38} median {:>7.2?}  best {:>7.2?}  worst {:>7.2?}  reachable {reachable}",
        backend.as_str(),
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
    );
}
