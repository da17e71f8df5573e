//! Wire-level fakes of the Hetzner Robot webservice and the Hetzner Cloud API, for tests and for
//! trying talos-manager offline; and [`FakeImageFactory`], a fake of the Talos Image Factory.
//!
//! [`FakeRobot`] and [`FakeCloud`] are real HTTP servers (poem) on `127.0.0.1:0` that answer like
//! the real APIs, following the research note `hetzner-apis.md` (§1–§3) and the response
//! fixtures in `data/` (see `data/PROVENANCE.md`). They are test doubles at the HTTP level: a
//! client under test talks to them exactly as it would talk to Hetzner, only the base URL
//! differs. This crate does not depend on `talos-manager-core`, so the fakes cannot share a bug
//! with the clients they check.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use talos_manager_fake_hetzner::{FakeCloud, FakeRobot};
//!
//! let robot = FakeRobot::start().await?; // seeded from the fixtures
//! let cloud = FakeCloud::start_empty().await?;
//! cloud.generate_servers(1_000); // 20 pages of 50
//! println!("{} {}", robot.url(), cloud.url());
//! # Ok(())
//! # }
//! ```
//!
//! # State model
//!
//! Each fake holds one account in memory behind a mutex; handlers never hold it across an
//! `await`. Tests read and change the state through the fake's methods while it serves.
//!
//! ## Robot (`FakeRobot`)
//!
//! * **Auth**: HTTP Basic with [`FakeRobot::USER`] / [`FakeRobot::PASSWORD`]
//!   ([`FakeRobot::set_password`] rotates it); anything else gets 401 `UNAUTHORIZED`. Three
//!   failed logins in a row block the client for 10 minutes, as the real Robot blocks the
//!   address: every request then gets 403 `BLOCKED`, good credentials included
//!   ([`FakeRobot::is_blocked`], [`FakeRobot::unblock`]). Bodies are forms (`server[]=1&server[]=2` and `server=1` both work, also
//!   on `DELETE`); answers are JSON, objects wrapped (`{"server":…}`) except vSwitches.
//! * **Hourly limits**: Robot's documented limit of each endpoint (`GET /server` 200,
//!   `GET /vswitch/{id}` 500, `POST /reset/{n}` 50, …) is counted over the last hour; past it
//!   the request gets 403 `RATE_LIMIT_EXCEEDED` with `max_requests` and `interval` (3600), as
//!   the real one answers ([`FakeRobot::rate_limit_answers`] counts them). The fake's clock
//!   moves with [`FakeRobot::advance_clock`] (limits, blocks and vSwitch locks end as if the
//!   time had passed); [`FakeRobot::without_hourly_limits`] turns the limits off for fuzzing.
//! * **Servers** ([`RobotServer`]): `GET /server` (404 `SERVER_NOT_FOUND` when there are none,
//!   like the real API), `GET /server/{n}`, `POST /server/{n}` (`server_name`).
//! * **Keys** ([`RobotKey`]): `GET /key` (404 `NOT_FOUND` when empty), `GET /key/{fp}`,
//!   `POST /key` (201; the MD5 fingerprint is computed from the key; 409 `KEY_ALREADY_EXISTS`),
//!   `DELETE /key/{fp}`.
//! * **Rescue** ([`RobotRescue`]), per server:
//!   ```text
//!   inactive --POST /boot/{n}/rescue--> active(os, password, keys) --reset that boots--> inactive
//!       ^                                  |  POST again: 409 BOOT_ALREADY_ENABLED        (booted_rescue = that activation)
//!       +-------DELETE /boot/{n}/rescue----+
//!   ```
//!   `authorized_key` must name stored keys (else 400 `INVALID_INPUT`); answers list them as
//!   `{"key":{name,fingerprint,type,size}}` objects, as the live API does.
//! * **Reset**: `GET /reset/{n}` gives `type[]` and `operating_status`; `POST /reset/{n}` accepts
//!   only an offered type. `power` on a `running` server switches it off (no boot); on a
//!   `shut off` one it switches it on (boot). `hw`, `sw`, `man` boot. A boot consumes an active
//!   rescue activation into `booted_rescue`. Every reset is recorded in `resets`.
//! * **vSwitches** ([`RobotVswitch`]): `GET /vswitch` (unwrapped refs, `[]` when empty),
//!   `GET /vswitch/{id}` (members; 404 `NOT_FOUND`), `POST`/`DELETE /vswitch/{id}/server`
//!   (empty 200). Each change locks the whole vSwitch for a while
//!   ([`FakeRobot::set_vswitch_lock`], default [`FakeRobot::DEFAULT_VSWITCH_LOCK`]): any change
//!   to it before then gets 409 `VSWITCH_IN_PROCESS`, whichever server it names. A new member
//!   reads as `processing` for its first reads ([`FakeRobot::set_vswitch_processing_reads`]),
//!   then `ready`.
//!
//! ## Cloud (`FakeCloud`)
//!
//! * **Auth**: `Authorization: Bearer` [`FakeCloud::TOKEN`], else 401 `unauthorized`. Paths are
//!   below `/v1`; bodies are JSON; every answer has `RateLimit-Limit`, `RateLimit-Remaining`,
//!   `RateLimit-Reset` and `X-Correlation-Id` headers.
//! * **Servers** ([`CloudServer`]): the current shape (`location`, no `datacenter`;
//!   `public_net.ipv4` is `null` for IPv6-only servers). `GET /servers` paginates (`page`,
//!   `per_page` default 25, at most 50) with `meta.pagination` and a `Link` header
//!   (`prev`/`next`/`last`), filters by `name` and `label_selector` (`k=v`, `k==v`, `k!=v`, `k`,
//!   `!k`, comma = and). `GET /servers/{id}`; `PUT /servers/{id}` (`name` unique → 409
//!   `uniqueness_error`; `labels` replace the set).
//! * **Actions**: `POST /servers/{id}/actions/{enable_rescue,disable_rescue,poweron,poweroff,
//!   reset,reboot,shutdown}` answer 201 with an action `running`; each `GET /actions/{id}`
//!   advances it, and after [`FakeCloud::set_action_polls`] polls (default 1) and
//!   [`FakeCloud::set_action_duration`] (default none) it is `success` with `"error": null`.
//!   Effects happen at once:
//!   ```text
//!   enable_rescue: rescue_enabled, root_password returned
//!   poweron/reset/reboot: status running; rescue_enabled -> booted_rescue
//!   poweroff/shutdown: status off
//!   ```
//!   While an action runs (its duration, or one started with
//!   [`FakeCloud::start_foreign_action`] as the console would), the server shows
//!   `"locked": true` and every other action, and a rename, is refused with 423 `locked`
//!   (nothing happens), as the real API refuses them. `ssh_keys` must name project keys.
//!   [`FakeCloud::fail_actions`] makes chosen actions end in `error` with a code, changing
//!   nothing.
//! * **SSH keys** ([`CloudSshKey`]): `GET /ssh_keys` (paginated; `name`, `fingerprint` filters),
//!   `POST /ssh_keys` (201; name and fingerprint unique → 409 `uniqueness_error`).
//! * **Rate limit**: a project budget ([`FakeCloud::set_rate_limit`], default 3600 refilled one
//!   per second); at 0 every request gets 429 `rate_limit_exceeded`.
//!
//! ## Faults, budgets and the request log (both fakes)
//!
//! [`FakeRobot::inject`] / [`FakeCloud::inject`] make the next `times` requests matching a
//! [`Target`] (method and path prefix, or any) fail with a [`Fault`]: rate limit (Robot 403
//! `RATE_LIMIT_EXCEEDED`, Cloud 429), a 5xx (502 comes as HTML, like a proxy's), a 5xx after
//! the request was carried out ([`Fault::AppliedThenStatus`]: the backend did it, the gateway
//! failed), slow (the
//! request is carried out, the answer comes after a delay) or drop (the connection closes with
//! no answer and nothing done). Robot also has per-endpoint
//! hourly budgets ([`FakeRobot::set_rate_limit`], refilled by
//! [`FakeRobot::refill_rate_limits`]). Every request is logged as `"METHOD /path"`
//! (`requests()`), so tests can check the order of calls.
//!
//! ## What is not modelled
//!
//! Any other method or path answers **501** with code `NOT_IMPLEMENTED_IN_FAKE` (Robot) or
//! `not_implemented_in_fake` (Cloud) and a message naming the call, never a silent 200. Not
//! modelled: ordering, cancellation, failover, IPs and subnets, firewalls, storage boxes, images,
//! set-based label selectors, sorting, time-based rescue expiry.

mod cloud;
mod common;
mod image_factory;
mod robot;

pub use cloud::{CloudServer, CloudSshKey, FakeCloud};
pub use common::{Fault, Target};
pub use image_factory::FakeImageFactory;
pub use robot::{FakeRobot, RobotKey, RobotRescue, RobotServer, RobotVswitch, VswitchMember};
