//! [`wait_for`]: the one bounded poll tests use instead of hand-written sleep loops.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `probe` every `interval` until it answers `Ok(value)`, and returns that value.
///
/// `probe` answers `Err(observed)` while the awaited state has not come; when `timeout` has
/// passed since the first poll the test fails with a message naming `what` was awaited and the
/// last observed value. The probe runs at least once, and once more after the deadline.
///
/// ```no_run
/// # async fn example(store: &talos_manager_core::Store, id: talos_manager_core::ids::JobId) {
/// use std::time::Duration;
/// use talos_manager_core::store::JobStatus;
/// use talos_manager_core::testing::wait_for;
///
/// let job = wait_for(
///     format!("job {id} to end"),
///     Duration::from_secs(30),
///     Duration::from_millis(100),
///     || async {
///         let job = store.get_job(id).await.unwrap();
///         if matches!(job.status, JobStatus::Queued | JobStatus::Running) {
///             Err(job.status)
///         } else {
///             Ok(job)
///         }
///     },
/// )
/// .await;
/// # }
/// ```
///
/// # Panics
/// When `timeout` passes before `probe` answers `Ok`.
pub async fn wait_for<T, O, F, Fut>(
    what: impl std::fmt::Display,
    timeout: Duration,
    interval: Duration,
    mut probe: F,
) -> T
where
    O: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, O>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let observed = match probe().await {
            Ok(value) => return value,
            Err(observed) => observed,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last observed: {observed:#?}"
        );
        tokio::time::sleep(interval).await;
    }
}

/// [`wait_for`] for code outside an async runtime (a child process, a file): polls `probe`
/// every `interval`, blocking the thread.
///
/// # Panics
/// When `timeout` passes before `probe` answers `Ok`.
pub fn wait_for_blocking<T, O, F>(
    what: impl std::fmt::Display,
    timeout: Duration,
    interval: Duration,
    mut probe: F,
) -> T
where
    O: Debug,
    F: FnMut() -> Result<T, O>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let observed = match probe() {
            Ok(value) => return value,
            Err(observed) => observed,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last observed: {observed:#?}"
        );
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{wait_for, wait_for_blocking};

    #[tokio::test]
    async fn returns_the_value_once_the_probe_answers() {
        let mut polls = 0;
        let value = wait_for(
            "the third poll",
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                polls += 1;
                let polls = polls;
                async move { if polls == 3 { Ok(polls) } else { Err(polls) } }
            },
        )
        .await;
        assert_eq!(value, 3);
    }

    #[test]
    fn names_what_was_awaited_and_the_last_observed_value() {
        let panic = std::panic::catch_unwind(|| {
            wait_for_blocking(
                "a state that never comes",
                Duration::from_millis(20),
                Duration::from_millis(5),
                || Err::<(), _>("still queued"),
            )
        })
        .unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(
            message.contains("waiting for a state that never comes")
                && message.contains("last observed: \"still queued\""),
            "{message}"
        );
    }
}
