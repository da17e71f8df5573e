//! Request budgets per provider account: what the client may still send to each endpoint this
//! hour, kept in memory per process, and the [`Clock`] they are counted on.
//!
//! Robot counts requests per endpoint per hour (`GET /server` 200, `GET /vswitch/{id}` 500,
//! `POST /reset/{id}` 50, …; the limits are on each request in `robot/api.rs`) and answers 403
//! `RATE_LIMIT_EXCEEDED` with `interval` once one is spent. Cloud has one budget per project
//! and says where it stands in the `RateLimit-Limit`, `-Remaining` and `-Reset` headers (429
//! `rate_limit_exceeded` once it is spent). The transport asks [`AccountBudgets::reserve`]
//! before every request: a request the budget does not allow is not sent, and a rate-limit
//! answer records the budget as spent until the time the provider gave, so that nothing is sent
//! to that endpoint until then.
//!
//! The budgets of one account are shared by every client of that account in the process
//! (clients are built afresh for every sync and job); each replica of talos-manager, and every
//! other tool using the same account, has its own count, so Robot may still refuse a request
//! the budget allowed (then the answer is recorded the same way).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use time::OffsetDateTime;

/// Where the budgets and caches of the provider clients read the time: the system clock, or a
/// manual one a test moves forward (a simulated week of syncs runs in seconds).
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Mutex<OffsetDateTime>>>,
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manual {
            None => f.write_str("Clock::System"),
            Some(_) => write!(f, "Clock::Manual({})", self.now()),
        }
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock::default()
    }

    /// A clock that stands at `start` until [`advance`](Self::advance)d.
    pub fn manual(start: OffsetDateTime) -> Self {
        Clock {
            manual: Some(Arc::new(Mutex::new(start))),
        }
    }

    /// The time now.
    pub fn now(&self) -> OffsetDateTime {
        match &self.manual {
            None => OffsetDateTime::now_utc(),
            Some(now) => *lock(now),
        }
    }

    /// Moves a manual clock forward by `by` (every clone of it moves); the system clock cannot
    /// be moved, so this does nothing to it.
    pub fn advance(&self, by: Duration) {
        if let Some(now) = &self.manual {
            let mut now = lock(now);
            *now += by;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

const HOUR: time::Duration = time::Duration::HOUR;

/// An endpoint's hourly limit, as the provider documents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HourlyLimit {
    /// The endpoint, as Robot's documentation names it: `GET /vswitch/{id}`.
    pub(crate) endpoint: &'static str,
    /// Requests allowed in any hour.
    pub(crate) per_hour: u32,
}

/// Why a request may not be sent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spent {
    /// The first time a request may be sent again.
    pub(crate) until: OffsetDateTime,
}

#[derive(Debug, Default)]
struct EndpointBudget {
    /// When the requests of the last hour were sent, oldest first.
    sent: VecDeque<OffsetDateTime>,
    /// The provider said the budget is spent until then.
    spent_until: Option<OffsetDateTime>,
}

impl EndpointBudget {
    fn forget_before(&mut self, now: OffsetDateTime) {
        while self.sent.front().is_some_and(|sent| *sent + HOUR <= now) {
            self.sent.pop_front();
        }
        if self.spent_until.is_some_and(|until| until <= now) {
            self.spent_until = None;
        }
    }
}

/// The budgets of one provider account: per endpoint for Robot, one for the whole project
/// (endpoint `*`) for Cloud.
#[derive(Debug, Default)]
pub(crate) struct AccountBudgets {
    endpoints: Mutex<HashMap<&'static str, EndpointBudget>>,
}

/// Every account's budgets in this process, by account key (base URL and user, or base URL and
/// a digest of the token).
static BUDGETS: LazyLock<Mutex<HashMap<String, Arc<AccountBudgets>>>> =
    LazyLock::new(Default::default);

impl AccountBudgets {
    /// The budgets of the account with this key, shared by every client of it in the process.
    pub(crate) fn of_account(key: &str) -> Arc<AccountBudgets> {
        lock(&BUDGETS).entry(key.to_owned()).or_default().clone()
    }

    /// Counts one request to `limit.endpoint` at `now`, or says until when none may be sent:
    /// the provider said the budget is spent, or `per_hour` requests went out in the last hour.
    pub(crate) fn reserve(&self, limit: HourlyLimit, now: OffsetDateTime) -> Result<(), Spent> {
        let mut endpoints = lock(&self.endpoints);
        let budget = endpoints.entry(limit.endpoint).or_default();
        budget.forget_before(now);
        if let Some(until) = budget.spent_until {
            return Err(Spent { until });
        }
        if budget.sent.len() >= limit.per_hour as usize {
            let oldest = budget.sent.front().copied().unwrap_or(now);
            return Err(Spent {
                until: oldest + HOUR,
            });
        }
        budget.sent.push_back(now);
        Ok(())
    }

    /// Requests `limit.endpoint` may still take this hour (0 while it is spent).
    pub(crate) fn remaining(&self, limit: HourlyLimit, now: OffsetDateTime) -> u32 {
        let mut endpoints = lock(&self.endpoints);
        let budget = endpoints.entry(limit.endpoint).or_default();
        budget.forget_before(now);
        if budget.spent_until.is_some() {
            return 0;
        }
        limit.per_hour.saturating_sub(budget.sent.len() as u32)
    }

    /// Records that the provider refused a request to `endpoint` for its rate limit, or said the
    /// budget is empty, until `until`.
    pub(crate) fn spent(&self, endpoint: &'static str, until: OffsetDateTime) {
        let mut endpoints = lock(&self.endpoints);
        let budget = endpoints.entry(endpoint).or_default();
        budget.spent_until = Some(budget.spent_until.map_or(until, |known| known.max(until)));
    }

    /// When `endpoint` may be sent to again, if the provider said it is spent.
    pub(crate) fn spent_until(
        &self,
        endpoint: &'static str,
        now: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        let mut endpoints = lock(&self.endpoints);
        let budget = endpoints.entry(endpoint).or_default();
        budget.forget_before(now);
        budget.spent_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: HourlyLimit = HourlyLimit {
        endpoint: "GET /server",
        per_hour: 2,
    };

    #[test]
    fn an_hourly_limit_refuses_until_its_oldest_request_is_an_hour_old() {
        let clock = Clock::manual(OffsetDateTime::UNIX_EPOCH);
        let budgets = AccountBudgets::default();
        assert_eq!(budgets.reserve(LIMIT, clock.now()), Ok(()));
        clock.advance(Duration::from_secs(600));
        assert_eq!(budgets.reserve(LIMIT, clock.now()), Ok(()));
        assert_eq!(budgets.remaining(LIMIT, clock.now()), 0);
        assert_eq!(
            budgets.reserve(LIMIT, clock.now()),
            Err(Spent {
                until: OffsetDateTime::UNIX_EPOCH + HOUR
            })
        );
        clock.advance(Duration::from_secs(3000));
        assert_eq!(budgets.remaining(LIMIT, clock.now()), 1);
        assert_eq!(budgets.reserve(LIMIT, clock.now()), Ok(()));
    }

    #[test]
    fn a_spent_answer_holds_every_request_until_the_given_time() {
        let clock = Clock::manual(OffsetDateTime::UNIX_EPOCH);
        let budgets = AccountBudgets::default();
        let until = clock.now() + HOUR;
        budgets.spent(LIMIT.endpoint, until);
        assert_eq!(budgets.reserve(LIMIT, clock.now()), Err(Spent { until }));
        assert_eq!(budgets.remaining(LIMIT, clock.now()), 0);
        clock.advance(Duration::from_secs(3600));
        assert_eq!(budgets.reserve(LIMIT, clock.now()), Ok(()));
    }
}
