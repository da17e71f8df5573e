//! The job worker: runs, logs, fails, cancels, recovers abandoned jobs, and never runs a job
//! twice when several workers (replicas) share a database.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use talos_manager_core::ids::JobId;
use talos_manager_core::jobs::{JobContext, JobError, JobHandler, JobQueue, Worker, WorkerTiming};
use talos_manager_core::store::{JobStatus, NewJob};
use talos_manager_core::testing::wait_for;
use talos_manager_core::{Backend, Store};
use talos_manager_http::metrics::Metrics;
use tokio::sync::watch;

use super::server::{TestServer, api_test};

const FAST: WorkerTiming = WorkerTiming {
    poll: Duration::from_millis(50),
    heartbeat: Duration::from_millis(50),
    // Generous: a loaded CI machine may delay a heartbeat; a live job must not look abandoned.
    abandoned_after: Duration::from_secs(3),
};

/// Logs `args.lines` lines, records its run, and fails when `args.fail` is set.
struct Echo {
    runs: Arc<Mutex<Vec<JobId>>>,
}

#[async_trait::async_trait]
impl JobHandler for Echo {
    fn kind(&self) -> &'static str {
        "echo"
    }

    fn repeatable(&self) -> bool {
        true
    }

    async fn run(&self, context: &JobContext) -> Result<(), JobError> {
        self.runs.lock().unwrap().push(context.job().id);
        let args = &context.job().args;
        for n in 0..args["lines"].as_u64().unwrap_or(0) {
            context.log(format!("line {n}")).await;
        }
        if let Some(reason) = args["fail"].as_str() {
            return Err(JobError::new(reason));
        }
        Ok(())
    }
}

/// Waits until cancelled.
struct Wait;

#[async_trait::async_trait]
impl JobHandler for Wait {
    fn kind(&self) -> &'static str {
        "wait"
    }

    fn repeatable(&self) -> bool {
        false
    }

    async fn run(&self, context: &JobContext) -> Result<(), JobError> {
        context.log("waiting").await;
        context.cancelled().await;
        Err(JobError::new("stopped on request"))
    }
}

/// A worker running in the background until the returned sender is dropped.
fn start_worker(
    store: &Store,
    id: &str,
    runs: &Arc<Mutex<Vec<JobId>>>,
) -> (JobQueue, watch::Sender<bool>, Metrics) {
    let queue = JobQueue::new(store.clone());
    let metrics = Metrics::new();
    let worker = Worker::new(queue.clone(), id)
        .observer(Arc::new(metrics.clone()))
        .register(Echo { runs: runs.clone() })
        .register(Wait)
        .timing(FAST);
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(worker.run(async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    (queue, stop, metrics)
}

async fn wait_for_status(
    store: &Store,
    id: JobId,
    status: JobStatus,
) -> talos_manager_core::store::Job {
    wait_for(
        format!("job {id} to become {status:?}"),
        Duration::from_secs(5),
        Duration::from_millis(25),
        || async {
            let job = store.get_job(id).await.unwrap();
            if job.status == status {
                Ok(job)
            } else {
                Err(job)
            }
        },
    )
    .await
}

fn job(kind: &str, args: serde_json::Value) -> NewJob {
    NewJob {
        kind: kind.into(),
        server_id: None,
        args,
    }
}

api_test!(jobs_run_log_and_fail_with_their_reason, |server| {
    let runs = Arc::new(Mutex::new(Vec::new()));
    let (queue, _stop, metrics) = start_worker(server.store(), "worker-a", &runs);
    let ok = queue
        .enqueue(&job("echo", json!({"lines": 3})))
        .await
        .unwrap();
    let failing = queue
        .enqueue(&job(
            "echo",
            json!({"lines": 1, "fail": "disk /dev/sdz not found"}),
        ))
        .await
        .unwrap();
    let unknown = queue.enqueue(&job("teleport", json!({}))).await.unwrap();

    wait_for_status(server.store(), ok.id, JobStatus::Succeeded).await;
    let lines: Vec<String> = server
        .store()
        .job_log(ok.id, None)
        .await
        .unwrap()
        .into_iter()
        .map(|line| line.line)
        .collect();
    assert_eq!(lines, ["line 0", "line 1", "line 2"]);

    let failed = wait_for_status(server.store(), failing.id, JobStatus::Failed).await;
    assert_eq!(
        failed.last_error.as_deref(),
        Some("disk /dev/sdz not found")
    );
    let log = server.store().job_log(failing.id, None).await.unwrap();
    assert_eq!(log.last().unwrap().line, "failed: disk /dev/sdz not found");

    let unknown = wait_for_status(server.store(), unknown.id, JobStatus::Failed).await;
    assert!(
        unknown
            .last_error
            .unwrap()
            .contains("no handler for jobs of kind \"teleport\"")
    );

    let counted = metrics.render();
    for line in [
        "talos_manager_jobs_total{kind=\"echo\",outcome=\"succeeded\"} 1",
        "talos_manager_jobs_total{kind=\"echo\",outcome=\"failed\"} 1",
        "talos_manager_jobs_total{kind=\"teleport\",outcome=\"failed\"} 1",
    ] {
        assert!(counted.contains(line), "{line} missing from:\n{counted}");
    }
});

api_test!(a_running_job_is_cancelled_through_the_api, |server| {
    let runs = Arc::new(Mutex::new(Vec::new()));
    let (queue, _stop, _) = start_worker(server.store(), "worker-a", &runs);
    let waiting = queue.enqueue(&job("wait", json!({}))).await.unwrap();
    wait_for_status(server.store(), waiting.id, JobStatus::Running).await;

    let path = format!("/api/v1/jobs/{}/cancel", waiting.id);
    let asked = server.expect(Method::POST, &path, None, 200).await;
    assert_eq!(asked["cancel_requested"], true);
    let cancelled = wait_for_status(server.store(), waiting.id, JobStatus::Cancelled).await;
    assert!(cancelled.finished_at.is_some());
    let log = server.store().job_log(waiting.id, None).await.unwrap();
    assert_eq!(log.last().unwrap().line, "cancelled");
});

api_test!(abandoned_jobs_are_recovered_by_a_live_worker, |server| {
    let store = server.store();
    // A worker claimed these, then died: nobody sends their heartbeats.
    let repeatable = store
        .enqueue_job(&job("echo", json!({"lines": 1})))
        .await
        .unwrap();
    let unsafe_to_repeat = store.enqueue_job(&job("wait", json!({}))).await.unwrap();
    store.claim_job("dead-worker").await.unwrap().unwrap();
    store.claim_job("dead-worker").await.unwrap().unwrap();

    let runs = Arc::new(Mutex::new(Vec::new()));
    let (_queue, _stop, _) = start_worker(store, "worker-b", &runs);
    let rerun = wait_for_status(store, repeatable.id, JobStatus::Succeeded).await;
    assert_eq!(rerun.attempts, 2);
    let failed = wait_for_status(store, unsafe_to_repeat.id, JobStatus::Failed).await;
    assert!(
        failed.last_error.unwrap().starts_with("abandoned"),
        "a job that is unsafe to repeat fails"
    );
});

async fn no_job_runs_twice(backend: Backend) {
    let server = TestServer::start(backend).await;
    let runs = Arc::new(Mutex::new(Vec::new()));
    let (queue, _stop_a, _) = start_worker(server.store(), "replica-a", &runs);
    let (_, _stop_b, _) = start_worker(server.store(), "replica-b", &runs);
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(
            queue
                .enqueue(&job("echo", json!({"lines": 1})))
                .await
                .unwrap()
                .id,
        );
    }
    for id in &ids {
        wait_for_status(server.store(), *id, JobStatus::Succeeded).await;
    }
    let mut runs = runs.lock().unwrap().clone();
    runs.sort();
    assert_eq!(runs, ids, "every job ran exactly once");
}

#[tokio::test]
async fn two_replicas_on_postgres_never_run_a_job_twice() {
    no_job_runs_twice(Backend::Postgres).await;
}

#[tokio::test]
async fn two_workers_on_sqlite_never_run_a_job_twice() {
    no_job_runs_twice(Backend::Sqlite).await;
}

/// Counts how many runs are in flight at once, and the most ever seen.
struct Exclusive {
    running: Arc<Mutex<(u32, u32)>>,
}

#[async_trait::async_trait]
impl JobHandler for Exclusive {
    fn kind(&self) -> &'static str {
        "exclusive"
    }

    fn repeatable(&self) -> bool {
        true
    }

    async fn run(&self, context: &JobContext) -> Result<(), JobError> {
        struct InFlight(Arc<Mutex<(u32, u32)>>);
        impl Drop for InFlight {
            fn drop(&mut self) {
                self.0.lock().unwrap().0 -= 1;
            }
        }
        {
            let mut running = self.running.lock().unwrap();
            running.0 += 1;
            running.1 = running.1.max(running.0);
        }
        let _in_flight = InFlight(self.running.clone());
        context
            .log(format!("running on {}", context.worker()))
            .await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        Ok(())
    }
}

api_test!(
    a_worker_that_cannot_renew_its_lease_stops_its_job,
    |server| {
        // Worker A's heartbeats fail from the first one on, as when its replica loses the
        // database; its claim went through.
        let trigger = match server.database.store().backend() {
            Backend::Sqlite => {
                "CREATE TRIGGER fail_heartbeats BEFORE UPDATE OF heartbeat_at ON jobs \
                 WHEN NEW.locked_by = 'worker-a' AND OLD.status = 'running' \
                 BEGIN SELECT RAISE(ABORT, 'database unreachable'); END;"
            }
            Backend::Postgres => {
                "CREATE FUNCTION fail_heartbeats() RETURNS trigger AS $$ BEGIN \
                 IF NEW.locked_by = 'worker-a' AND OLD.status = 'running' \
                 AND NEW.heartbeat_at IS DISTINCT FROM OLD.heartbeat_at THEN \
                 RAISE EXCEPTION 'database unreachable'; END IF; RETURN NEW; END $$ \
                 LANGUAGE plpgsql; \
                 CREATE TRIGGER fail_heartbeats BEFORE UPDATE ON jobs FOR EACH ROW \
                 EXECUTE FUNCTION fail_heartbeats();"
            }
        };
        server.database.execute(trigger).await;
        let running = Arc::new(Mutex::new((0, 0)));
        let timing = WorkerTiming {
            poll: Duration::from_millis(50),
            heartbeat: Duration::from_millis(300),
            abandoned_after: Duration::from_millis(1500),
        };
        let start = |id: &str| {
            let worker = Worker::new(JobQueue::new(server.store().clone()), id)
                .register(Exclusive {
                    running: running.clone(),
                })
                .timing(timing);
            let (stop, mut stopped) = watch::channel(false);
            tokio::spawn(worker.run(async move {
                let _ = stopped.wait_for(|s| *s).await;
            }));
            stop
        };
        let _a = start("worker-a");
        let queued = server
            .store()
            .enqueue_job(&job("exclusive", json!({})))
            .await
            .unwrap();
        // A claims it; then B, which recovers it once A's heartbeat is a second old.
        wait_for(
            "worker-a to claim the job",
            Duration::from_secs(2),
            Duration::from_millis(20),
            || async {
                let job = server.store().get_job(queued.id).await.unwrap();
                if job.locked_by.as_deref() == Some("worker-a") {
                    Ok(())
                } else {
                    Err(job)
                }
            },
        )
        .await;
        let _b = start("worker-b");
        let done = wait_for(
            "worker B to run the job to its end",
            Duration::from_secs(20),
            Duration::from_millis(50),
            || async {
                let job = server.store().get_job(queued.id).await.unwrap();
                if job.status == JobStatus::Succeeded {
                    Ok(job)
                } else {
                    Err(job)
                }
            },
        )
        .await;
        assert!(done.attempts >= 2, "claimed by A, then by B: {done:?}");
        let (in_flight, most) = *running.lock().unwrap();
        assert_eq!(in_flight, 0);
        assert_eq!(most, 1, "A stopped each of its runs before B started one");
        let log: Vec<String> = server
            .store()
            .job_log(queued.id, None)
            .await
            .unwrap()
            .into_iter()
            .map(|line| line.line)
            .collect();
        // A may claim it again after a recovery (claiming works, renewing does not): each of
        // its runs is stopped; only B's run finishes it.
        assert_eq!(log.first().map(String::as_str), Some("running on worker-a"));
        assert_eq!(log.last().map(String::as_str), Some("running on worker-b"));
        assert_eq!(
            log.iter()
                .filter(|line| *line == "running on worker-b")
                .count(),
            1,
            "{log:?}"
        );
    }
);

api_test!(job_list_pages_follow_the_cursor, |server| {
    for n in 0..5 {
        server
            .store()
            .enqueue_job(&job("echo", json!({ "n": n })))
            .await
            .unwrap();
    }
    let page = |query: String| {
        let request = server
            .client
            .get(server.url(&format!("/api/v1/jobs{query}")))
            .bearer_auth(&server.token);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let next = response
                .headers()
                .get("x-next-cursor")
                .map(|value| value.to_str().unwrap().to_owned());
            let body: serde_json::Value = response.json().await.unwrap();
            (status, next, body)
        }
    };
    let ids = |body: &serde_json::Value| -> Vec<i64> {
        body.as_array()
            .unwrap()
            .iter()
            .map(|job| job["id"].as_str().unwrap().parse().unwrap())
            .collect()
    };
    let (status, next, first) = page("?limit=2".into()).await;
    assert_eq!(status, 200);
    let first = ids(&first);
    assert_eq!(first.len(), 2);
    assert!(first[0] > first[1], "newest first");
    let next = next.expect("more pages");
    assert_eq!(next, first[1].to_string());
    let (_, next, second) = page(format!("?limit=2&cursor={next}")).await;
    let second = ids(&second);
    assert_eq!(second.len(), 2);
    assert!(second[0] < first[1]);
    let (_, last_cursor, last) = page(format!("?limit=2&cursor={}", next.unwrap())).await;
    assert_eq!(ids(&last).len(), 1);
    assert_eq!(last_cursor, None, "the last page has no cursor");
    // The default page holds all five; a page size out of range is refused.
    let (_, next, all) = page(String::new()).await;
    assert_eq!((ids(&all).len(), next), (5, None));
    let (status, _, refused) = page("?limit=0".into()).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["issues"][0]["path"], "limit");
    let (status, _, _) = page("?limit=1001".into()).await;
    assert_eq!(status, 422);
    let (status, _, refused) = page("?cursor=abc".into()).await;
    assert_eq!(status, 422, "{refused}");
});
