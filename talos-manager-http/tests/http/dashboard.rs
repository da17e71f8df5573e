//! The web dashboard in a real browser: Debian's Chromium, headless, driven over WebDriver by
//! chromedriver, against the whole service in the test process.
//!
//! `scripts/test` installs `chromium` and `chromium-driver`; without them this test fails and
//! says so. With `UPDATE_SCREENSHOTS=1` it refreshes `docs/screenshots/*.png`, which README.md
//! shows.

use super::api_bootstrap::Bench;
use super::api_servers_jobs::add_server;
use super::cluster_bootstrap::{new_cluster, start_worker};
use super::server::{PASSWORD, TestServer};
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::{Value, json};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use talos_manager_core::Backend;
use talos_manager_core::ProviderKind;
use talos_manager_core::jobs::{JobQueue, SyncJob, Worker};
use talos_manager_core::store::{JobOutcome, NewJob};
use talos_manager_core::testing::wait_for;
use talos_manager_fake_hetzner::{FakeCloud, FakeRobot, RobotServer};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long the page may take to show something.
const PATIENCE: Duration = Duration::from_secs(30);

/// chromedriver (in its own process group, with the Chromium it starts) and the browser's
/// profile; killed and removed when dropped, also when the test fails.
struct Browser {
    driver: Child,
    client: Option<Client>,
    profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: run scripts/test, which installs Debian's chromium and \
                 chromium-driver (or apt-get install chromium chromium-driver)"
            );
        }
        let port = free_port();
        let profile = tempfile::tempdir().unwrap();
        let driver = std::os::unix::process::CommandExt::process_group(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            0,
        )
        .spawn()
        .expect("start chromedriver");
        let mut browser = Browser {
            driver,
            client: None,
            profile,
        };
        wait_for(
            format!("chromedriver to listen on {port}"),
            Duration::from_secs(20),
            Duration::from_millis(100),
            || async { TcpStream::connect(("127.0.0.1", port)).map(drop) },
        )
        .await;
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,860",
                    format!("--user-data-dir={}", browser.profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::rustls()
            .unwrap()
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("open a Chromium session through chromedriver");
        browser.client = Some(client);
        browser
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    async fn goto(&self, url: &str) {
        self.client().goto(url).await.unwrap();
    }

    /// Runs `script` in the page with `args`; answers its result.
    async fn js(
        &self,
        script: &str,
        args: Vec<Value>,
    ) -> Result<Value, fantoccini::error::CmdError> {
        self.client().execute(script, args).await
    }

    /// Waits until the element `css` exists and its text contains `needle`; answers the text.
    #[track_caller]
    fn wait_text<'a>(
        &'a self,
        css: &'a str,
        needle: &'a str,
    ) -> impl std::future::Future<Output = String> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            let last = std::cell::RefCell::new(Value::Null);
            wait_for(
                format!("(at {caller}) {css} to show {needle:?}"),
                PATIENCE,
                Duration::from_millis(100),
                || async {
                    // Errors while a page loads are expected: try again.
                    if let Ok(text) = self
                        .js(
                            "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
                            vec![css.into()],
                        )
                        .await
                    {
                        if let Some(text) = text.as_str()
                            && text.contains(needle)
                        {
                            return Ok(text.to_owned());
                        }
                        *last.borrow_mut() = text;
                    }
                    let body = self.body().await;
                    Err(format!("it shows {}; the page: {body}", last.borrow()))
                },
            )
            .await
        }
    }

    /// Waits until no element matches `css` (a closed dialog leaves the page in its `close`
    /// event, a task after the click that closed it); fails after [`PATIENCE`].
    async fn wait_gone(&self, css: &str) {
        wait_for(
            format!("{css} to leave the page"),
            PATIENCE,
            Duration::from_millis(100),
            || async {
                let present = self
                    .js(
                        "return document.querySelector(arguments[0]) !== null;",
                        vec![css.into()],
                    )
                    .await
                    .unwrap();
                if present == Value::Bool(false) {
                    Ok(())
                } else {
                    Err(present)
                }
            },
        )
        .await;
    }

    /// The page's text (empty when it cannot be read), for failure messages.
    async fn body(&self) -> Value {
        self.js("return document.body.innerText;", vec![])
            .await
            .unwrap_or_default()
    }

    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        self.client()
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no {css}: {error}"))
    }

    /// Clicks the element `css`; again when a live update replaced it in between.
    async fn click(&self, css: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.element(css).await.click().await {
                Ok(()) => return,
                Err(error) if is_stale(&error) && Instant::now() < deadline => {}
                Err(error) => panic!("click on {css}: {error}"),
            }
        }
    }

    /// Chooses the option labelled `label` of the select `css`; again when a live update
    /// replaced it in between.
    async fn select(&self, css: &str, label: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.element(css).await.select_by_label(label).await {
                Ok(()) => return,
                Err(error) if is_stale(&error) && Instant::now() < deadline => {}
                Err(error) => panic!("choose {label} in {css}: {error}"),
            }
        }
    }

    /// Types `text` into the field `css` after clearing it.
    async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        element.clear().await.unwrap();
        element.send_keys(text).await.unwrap();
    }

    /// Sets a text area's value at once (typing a long YAML document is slow).
    async fn set_value(&self, css: &str, value: &str) {
        self.element(css).await;
        self.js(
            "document.querySelector(arguments[0]).value = arguments[1];",
            vec![css.into(), value.into()],
        )
        .await
        .unwrap();
    }

    /// Runs a Chrome DevTools Protocol command (chromedriver's `goog/cdp/execute`).
    async fn cdp(&self, method: &'static str, params: Value) {
        self.client()
            .issue_cmd(Cdp { method, params })
            .await
            .unwrap_or_else(|error| panic!("{method}: {error}"));
    }

    /// Saves a screenshot to `docs/screenshots/<name>.png` when `UPDATE_SCREENSHOTS=1`.
    async fn screenshot(&self, name: &str) {
        let png = self.client().screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        if std::env::var_os("UPDATE_SCREENSHOTS").is_some_and(|value| value == "1") {
            let folder = screenshots_folder();
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join(format!("{name}.png")), png).unwrap();
        }
    }

    async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leads its own process group, and Chromium stays in it: end them all.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A Chrome DevTools Protocol command, sent through chromedriver.
#[derive(Debug)]
struct Cdp {
    method: &'static str,
    params: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &reqwest::Url,
        session_id: Option<&str>,
    ) -> Result<reqwest::Url, <reqwest::Url as std::str::FromStr>::Err> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _url: &reqwest::Url) -> (Method, Option<String>) {
        let body = json!({"cmd": self.method, "params": self.params});
        (Method::POST, Some(body.to_string()))
    }
}

/// Whether a WebDriver command failed because the element left the page (a live update
/// re-rendered it).
fn is_stale(error: &fantoccini::error::CmdError) -> bool {
    matches!(
        error,
        fantoccini::error::CmdError::Standard(error)
            if error.error == fantoccini::error::ErrorStatus::StaleElementReference
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn screenshots_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots")
}

#[tokio::test]
async fn a_user_signs_in_configures_a_server_and_follows_a_job_log() {
    let server = TestServer::start(Backend::Sqlite).await;
    let browser = Browser::start().await;
    let url = |path: &str| server.url(path);

    // Signing in: a wrong token is refused in the form, the right one opens the servers page.
    browser.goto(&url("/")).await;
    browser.type_into("input[name=secret]", "tm_wrong").await;
    browser.click("form.login button[type=submit]").await;
    browser.wait_text(".form-issues", "refused").await;
    browser.type_into("input[name=secret]", &server.token).await;
    browser.click("form.login button[type=submit]").await;
    browser.wait_text("#servers", "No servers yet").await;
    browser.screenshot("onboarding").await;

    // A cluster.
    browser.goto(&url("/clusters?new")).await;
    browser
        .type_into("#cluster-form input[name=name]", "prod")
        .await;
    browser
        .type_into(
            "#cluster-form input[name=endpoint]",
            "https://10.0.0.1:6443",
        )
        .await;
    browser.click("#cluster-form button[type=submit]").await;
    browser.wait_text("table", "https://10.0.0.1:6443").await;
    browser.screenshot("clusters").await;
    // Editing hides the secrets until asked for.
    browser.click("a[href^='/clusters?edit=']").await;
    browser.wait_text("h1", "Edit cluster prod").await;
    browser.click("#cluster-form button[type=button]").await;
    // The bundle is fetched when asked for: wait for it.
    wait_for(
        "the secrets bundle to show",
        PATIENCE,
        Duration::from_millis(100),
        || async {
            let secrets = browser
                .element("#cluster-form textarea[name=secrets]")
                .await
                .prop("value")
                .await
                .unwrap()
                .unwrap_or_default();
            if secrets.contains("cluster:") {
                Ok(())
            } else {
                Err(secrets)
            }
        },
    )
    .await;

    // A config: a bad patch is refused with its issue next to the field, then a good one.
    browser.goto(&url("/configs?new")).await;
    // The hints name the versions of the engine's contracts, the newest as the default.
    let hint = browser
        .wait_text(
            "#config-form [data-field=install_image]",
            &format!(
                "Empty: the service's default, {}",
                talos_manager_core::store::default_install_image()
            ),
        )
        .await;
    for version in talos_manager_core::talos::TalosVersion::ALL {
        assert!(hint.contains(version.release()), "{hint}");
    }
    browser
        .wait_text(
            "#config-form [data-field=kubernetes_version]",
            talos_manager_core::store::DEFAULT_KUBERNETES_VERSION,
        )
        .await;
    browser
        .type_into("#config-form input[name=name]", "default")
        .await;
    let invalid_patch = include_str!(
        "../../../talos-manager-core/tests/data/talos/original-app/invalid-nameservers-patch.yaml"
    );
    browser
        .set_value("#config-form textarea[name=patch]", invalid_patch)
        .await;
    browser.click("#config-form button[type=submit]").await;
    let issue = browser
        .wait_text("[data-field=patch] .issues", "patch")
        .await;
    assert!(issue.contains("error parsing config JSON patch"), "{issue}");
    browser.screenshot("config-issue").await;
    browser
        .set_value(
            "#config-form textarea[name=patch]",
            "machine:\n  sysctls:\n    vm.max_map_count: \"262144\"\n",
        )
        .await;
    browser.click("#config-form button[type=submit]").await;
    // Left empty in the form, the installer is the API's default.
    browser
        .wait_text("table", &talos_manager_core::store::default_install_image())
        .await;

    // Talos's warnings (a deprecated field) do not refuse a config: it is saved, and its edit
    // form shows them apart from issues, each with its path.
    browser.goto(&url("/configs?new")).await;
    browser
        .type_into("#config-form input[name=name]", "warned")
        .await;
    browser
        .set_value(
            "#config-form input[name=install_image]",
            "ghcr.io/siderolabs/installer:v1.13.9",
        )
        .await;
    browser
        .set_value(
            "#config-form textarea[name=patch]",
            "machine:\n  install:\n    extensions:\n      - image: ghcr.io/siderolabs/gvisor:1\n",
        )
        .await;
    browser.click("#config-form button[type=submit]").await;
    let warning = browser
        .wait_text("#config-form .form-warnings", "machine.install.extensions")
        .await;
    assert!(warning.contains("Saved."), "{warning}");
    assert!(
        warning.contains(".machine.install.extensions is deprecated"),
        "{warning}"
    );
    browser.wait_text("h1", "Edit config warned").await;
    browser.screenshot("config-warnings").await;
    let configs = server
        .expect(Method::GET, "/api/v1/configs", None, 200)
        .await;
    let warned = configs
        .as_array()
        .unwrap()
        .iter()
        .find(|config| config["name"] == "warned")
        .expect("the config with warnings is saved");
    server
        .expect(
            Method::DELETE,
            &format!("/api/v1/configs/{}", warned["id"].as_str().unwrap()),
            None,
            204,
        )
        .await;

    // A server appears (as a sync would add it) and is configured with the original's defaults.
    add_server(&server, ProviderKind::HetznerRobot, "7", "control-plane-1").await;
    browser.goto(&url("/servers")).await;
    browser.wait_text("#servers tbody", "control-plane-1").await;
    browser.wait_text("#servers tbody", "Not seen yet").await;
    browser
        .click("tr[data-server=robot-7] a[href^='/configure']")
        .await;
    browser.wait_text("h1", "Configure control-plane-1").await;
    let private_ip = browser
        .element("#configure-form input[name=private_ip]")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(private_ip.as_deref(), Some("10.0.0.1"));
    browser
        .click("#configure-form input[name=already_configured]")
        .await;
    browser.screenshot("configure").await;
    browser.click("#configure-form button[type=submit]").await;
    let row = browser
        .wait_text("tr[data-server=robot-7]", "Configured")
        .await;
    assert!(row.contains("default"), "the config's name shows: {row}");
    assert!(row.contains("127.0.113.7"), "{row}");
    browser.screenshot("servers").await;

    // A job's log, followed live.
    let store = server.store().clone();
    let server_row = store.list_servers().await.unwrap().remove(0);
    let job = store
        .enqueue_job(&NewJob {
            kind: "bootstrap".into(),
            server_id: Some(server_row.id),
            args: json!({"disk": "/dev/nvme0n1"}),
        })
        .await
        .unwrap();
    store.claim_job("test-worker").await.unwrap().unwrap();
    store
        .append_job_log(job.id, "wiping /dev/nvme0n1")
        .await
        .unwrap();
    let jobs = server.expect(Method::GET, "/api/v1/jobs", None, 200).await;
    let job_id = jobs[0]["id"].as_str().unwrap().to_owned();
    browser.goto(&url("/jobs")).await;
    browser.wait_text("#jobs", "running").await;
    browser.goto(&url(&format!("/jobs?id={job_id}"))).await;
    browser.wait_text("#job-log", "wiping /dev/nvme0n1").await;
    browser.wait_text("#job-status", "running").await;
    store
        .append_job_log(job.id, "writing image: 50%")
        .await
        .unwrap();
    browser.wait_text("#job-log", "writing image: 50%").await;
    store.append_job_log(job.id, "rebooting").await.unwrap();
    store
        .finish_job(job.id, "test-worker", JobOutcome::Succeeded)
        .await
        .unwrap();
    browser.wait_text("#job-log", "rebooting").await;
    browser.wait_text("#job-status", "succeeded").await;
    browser.wait_text("#log-state", "ended").await;
    let cancel_shown = browser
        .js(
            "return [...document.querySelectorAll('button')].some((b) => b.textContent === 'Cancel job' && b.offsetParent !== null);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(cancel_shown, false, "a finished job cannot be cancelled");
    browser.screenshot("job-log").await;

    // A label and taint rule: a wrong taint effect is shown under its field.
    browser.goto(&url("/label-taint-rules?new")).await;
    browser
        .type_into("#rule-form input[name=match]", "database")
        .await;
    browser
        .type_into("#rule-form input[name=taints]", "dedicated=db:Sometimes")
        .await;
    browser.click("#rule-form button[type=submit]").await;
    browser
        .wait_text("[data-field=taints] .issues", "taints")
        .await;
    browser
        .type_into("#rule-form input[name=taints]", "dedicated=db:NoSchedule")
        .await;
    browser.click("#rule-form button[type=submit]").await;
    browser.wait_text("table", "dedicated=db:NoSchedule").await;

    // Settings: a new token's secret is shown once.
    browser.goto(&url("/settings")).await;
    browser
        .type_into("#token-form input[name=name]", "terraform-ci")
        .await;
    browser.click("#token-form button[type=submit]").await;
    let shown = browser.wait_text("#created-token", "tm_").await;
    assert!(shown.contains("cannot be shown again"), "{shown}");
    browser.wait_text("#tokens", "terraform-ci").await;
    browser.screenshot("settings").await;

    // A failed job shows in the server's row, with its reason and a link to its log.
    let failed = store
        .enqueue_job(&NewJob {
            kind: "bootstrap".into(),
            server_id: Some(server_row.id),
            args: json!({}),
        })
        .await
        .unwrap();
    store.claim_job("test-worker").await.unwrap().unwrap();
    store
        .finish_job(
            failed.id,
            "test-worker",
            JobOutcome::Failed("no disk /dev/nvme0n1"),
        )
        .await
        .unwrap();
    browser.goto(&url("/servers")).await;
    browser
        .wait_text(
            "tr[data-server=robot-7] a.job-state",
            "bootstrap failed: no disk /dev/nvme0n1",
        )
        .await;

    // On a phone.
    browser.client().set_window_size(390, 844).await.unwrap();
    browser.goto(&url("/servers")).await;
    browser
        .wait_text("tr[data-server=robot-7]", "Configured")
        .await;
    browser.screenshot("servers-phone").await;

    // Signing out forgets the credentials; the password (HTTP Basic) signs in too.
    browser.click("#sign-out").await;
    browser.wait_text("#main", "Sign in").await;
    browser.goto(&url("/jobs")).await;
    browser.wait_text("#main", "Sign in").await;
    browser
        .element("form.login select[name=kind]")
        .await
        .select_by_value("password")
        .await
        .unwrap();
    browser.type_into("input[name=secret]", PASSWORD).await;
    browser.click("form.login button[type=submit]").await;
    browser.wait_text("#jobs", "succeeded").await;
    browser.close().await;
}

#[tokio::test]
async fn a_user_adds_accounts_and_a_schematic_syncs_and_reads_a_runbook() {
    let server = TestServer::start(Backend::Sqlite).await;
    server
        .robot
        .add_server(RobotServer::new(7, "control-plane-1"));
    server.robot.generate_servers(2);
    server.cloud.generate_servers(1);
    // A worker runs the sync jobs the Sync button queues, as `serve` does.
    let providers =
        talos_manager_core::sync::ProviderFactory::new(server.robot.url(), server.cloud.url())
            .with_retry_policy(talos_manager_core::RetryPolicy::for_fakes());
    let worker = Worker::new(JobQueue::new(server.store().clone()), "browser-test")
        .register(SyncJob::new(providers));
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(worker.run(async move {
        let _ = stopped.wait_for(|stopped| *stopped).await;
    }));
    let browser = Browser::start().await;
    let url = |path: &str| server.url(path);

    // With no account yet, the servers page says where to start.
    browser.goto(&url("/")).await;
    browser.type_into("input[name=secret]", &server.token).await;
    browser.click("form.login button[type=submit]").await;
    let hint = browser
        .wait_text("#servers", "add a provider account")
        .await;
    assert!(
        hint.contains("Press Sync") || hint.contains("then press Sync"),
        "{hint}"
    );

    // Provider accounts: the provider refuses a wrong password before anything is saved.
    browser.goto(&url("/settings")).await;
    browser
        .type_into("#account-form input[name=name]", FakeRobot::USER)
        .await;
    browser
        .type_into("#account-form input[name=secret]", "not-the-password")
        .await;
    browser.click("#account-form button[type=submit]").await;
    let refused = browser
        .wait_text("#account-form [data-field=secret] .issues", "secret")
        .await;
    assert!(!refused.contains("not-the-password"), "{refused}");
    browser
        .type_into("#account-form input[name=secret]", FakeRobot::PASSWORD)
        .await;
    browser.click("#account-form button[type=submit]").await;
    browser.wait_text("#accounts", FakeRobot::USER).await;
    browser
        .element("#account-form select[name=provider]")
        .await
        .select_by_value("hetzner_cloud")
        .await
        .unwrap();
    let label = browser
        .wait_text("#account-form [data-field=secret] label", "API token")
        .await;
    assert_eq!(label, "API token (read & write)");
    browser
        .type_into("#account-form input[name=name]", "project-a")
        .await;
    browser
        .type_into("#account-form input[name=secret]", FakeCloud::TOKEN)
        .await;
    browser.click("#account-form button[type=submit]").await;
    let accounts = browser.wait_text("#accounts", "project-a").await;
    assert!(accounts.contains("Hetzner Cloud"), "{accounts}");
    assert!(
        !accounts.contains(FakeCloud::TOKEN) && !accounts.contains(FakeRobot::PASSWORD),
        "secrets are never shown: {accounts}"
    );
    browser.screenshot("settings-accounts").await;

    // A schematic, registered with the Image Factory, made the default.
    browser.goto(&url("/schematics")).await;
    browser.wait_text("#main", "No schematic yet").await;
    browser.click("a[href='/schematics?new']").await;
    browser
        .type_into("#schematic-form input[name=name]", "amd")
        .await;
    browser.click("#schematic-form button[type=submit]").await;
    browser.wait_text("table", "amd").await;
    browser.screenshot("schematics").await;
    browser.goto(&url("/settings")).await;
    browser
        .element("#settings-form select[name=default_schematic_id]")
        .await
        .select_by_label("amd")
        .await
        .unwrap();
    browser.click("#settings-form button[type=submit]").await;
    browser.wait_text("#flash", "Saved the default").await;
    browser.goto(&url("/schematics")).await;
    let row = browser.wait_text("table", "default").await;
    assert!(row.contains("amd"), "{row}");
    let settings = server
        .expect(Method::GET, "/api/v1/settings", None, 200)
        .await;
    assert!(settings["default_schematic_id"].is_string(), "{settings}");

    // Sync: the job is linked at once, and the servers of both accounts appear.
    browser.goto(&url("/servers")).await;
    browser.wait_text("#servers", "Press Sync").await;
    browser.click("#sync").await;
    browser.element("#sync-state a[href^='/jobs?id=']").await;
    browser.goto(&url("/servers")).await;
    // The sync may still be adding servers when the page loads: they arrive live.
    browser.wait_text("#servers tbody", "control-plane-1").await;
    browser.wait_text("#servers tbody", "robot-8").await;
    browser.wait_text("#servers tbody", "robot-9").await;
    // The Cloud server shows too.
    browser.wait_text("#servers tbody", "cloud-").await;
    browser
        .wait_text("#sync-state", "last sync succeeded")
        .await;

    // A configured control plane: its reboot runbook in a dialog, ready to copy.
    let (cluster, config) = server.cluster_and_config(json!({"name": "default"})).await;
    let stored = server
        .store()
        .list_servers()
        .await
        .unwrap()
        .into_iter()
        .find(|row| row.inventory.name == "control-plane-1")
        .unwrap();
    server
        .store()
        .update_server_assignment(
            stored.id,
            "control-plane-1",
            Some(talos_manager_core::ids::ClusterId(
                cluster["id"].as_str().unwrap().parse().unwrap(),
            )),
            None,
            None,
        )
        .await
        .unwrap();
    server
        .expect(
            Method::POST,
            "/api/v1/machine-configs",
            Some(json!({
                "server_id": "robot-7",
                "config_id": config["id"],
                "hostname": "control-plane-1",
            })),
            201,
        )
        .await;
    browser.goto(&url("/servers")).await;
    browser.wait_text("tr[data-server=robot-7]", "Reboot").await;
    browser
        .js(
            "[...document.querySelectorAll('tr[data-server=robot-7] button')].find((b) => b.textContent === 'Reboot…').click();",
            vec![],
        )
        .await
        .unwrap();
    let runbook = browser.wait_text("dialog[open]", "talosctl").await;
    assert!(runbook.contains("Reboot: control-plane-1"), "{runbook}");
    assert!(
        runbook.contains("forfeit"),
        "a control plane forfeits etcd leadership first: {runbook}"
    );
    browser.screenshot("runbook").await;
    browser.click("dialog[open] button[data-close]").await;
    browser.wait_gone("dialog").await;

    // The cluster select saves at once; the API sees the change.
    browser
        .select("tr[data-server=robot-8] select[name=cluster_id]", "prod")
        .await;
    browser.wait_text("#flash", "robot-8 is in prod now").await;
    let moved = server
        .expect(Method::GET, "/api/v1/servers/robot-8", None, 200)
        .await;
    assert_eq!(moved["cluster_id"], cluster["id"], "{moved}");

    // The bootstrap dialog of a server never probed in rescue: it says so, and the dry run
    // explains why there is no plan yet.
    browser
        .js(
            "[...document.querySelectorAll('tr[data-server=robot-9] button')].find((b) => b.textContent === 'Bootstrap…').click();",
            vec![],
        )
        .await
        .unwrap();
    browser
        .wait_text("dialog[open]", "No disks are known yet")
        .await;
    let versions = browser
        .wait_text("#bootstrap-form [data-field=talos_version]", "v1.")
        .await;
    // The default (the newest contract's release) and every contract's release are offered,
    // besides the factory's other versions.
    assert!(
        versions.contains(talos_manager_core::store::DEFAULT_TALOS_VERSION),
        "{versions}"
    );
    for version in talos_manager_core::talos::TalosVersion::ALL {
        assert!(versions.contains(version.release()), "{versions}");
    }
    assert!(versions.contains("v1.10.4"), "{versions}");
    let schematic = browser
        .element("#bootstrap-form select[name=schematic]")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(
        schematic,
        settings["default_schematic_id"].as_str().unwrap(),
        "the default schematic is preselected"
    );
    browser.click("#show-plan").await;
    let plan = browser.wait_text("#bootstrap-plan", "rescue").await;
    assert!(plan.contains("robot-9"), "{plan}");
    browser.screenshot("bootstrap-dialog").await;
    browser.click("dialog[open] button[data-close]").await;

    browser.close().await;
    stop.send(true).unwrap();
    worker.await.unwrap();
}

/// Whether the page is still the one loaded when `mark_page` ran (it was not reloaded).
async fn same_page(browser: &Browser) -> bool {
    browser
        .js("return window.notReloaded === true;", vec![])
        .await
        .unwrap()
        == Value::Bool(true)
}

/// Marks the loaded page, so `same_page` can tell it was not reloaded since.
async fn mark_page(browser: &Browser) {
    browser
        .js("window.notReloaded = true;", vec![])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_user_bootstraps_a_server_and_sees_it_fetch_its_config_live() {
    // Issue #9's whole way in the browser: sync → configure → bootstrap from the dialog → the
    // log reaches 100 % live → the node (127.0.0.1) fetches its config → the servers page
    // shows it, without a reload.
    let bench = Bench::start_before_sync(Backend::Sqlite).await;
    let server = &bench.server;
    let (bundle, kubernetes) = crate::http::labels_taints::bundle_and_fake().await;
    kubernetes.add_node("worker-1", json!({}), json!([]));
    server
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(
                json!({"name": "prod", "endpoint": kubernetes.url(), "secrets": bundle.to_yaml()}),
            ),
            201,
        )
        .await;
    server
        .expect(
            Method::POST,
            "/api/v1/configs",
            Some(json!({"name": "default", "kubernetes_version": "1.30.1"})),
            201,
        )
        .await;
    let browser = Browser::start().await;
    let url = |path: &str| server.url(path);

    browser.goto(&url("/")).await;
    browser.type_into("input[name=secret]", &server.token).await;
    browser.click("form.login button[type=submit]").await;
    browser.wait_text("#servers", "Press Sync").await;
    browser.wait_text("#live-state", "Live").await;
    mark_page(&browser).await;

    // Sync: the server arrives live, probed in rescue (the sshd on 127.0.0.1 says `rescue`).
    browser.click("#sync").await;
    let row = browser
        .wait_text("tr[data-server=robot-321]", "in rescue")
        .await;
    assert!(row.contains("worker-1"), "{row}");
    assert!(row.contains("127.0.0.1"), "{row}");
    browser.wait_text("#sync-state", "succeeded").await;
    assert!(same_page(&browser).await, "the row came without a reload");

    // Into the cluster, then configured with the machine config form.
    browser
        .select("tr[data-server=robot-321] select[name=cluster_id]", "prod")
        .await;
    browser.wait_text("#flash", "worker-1 is in prod now").await;
    browser
        .click("tr[data-server=robot-321] a[href^='/configure']")
        .await;
    browser.wait_text("h1", "Configure worker-1").await;
    browser
        .type_into(
            "#configure-form input[name=install_disk]",
            bench.disk.path(),
        )
        .await;
    browser.click("#configure-form button[type=submit]").await;
    let row = browser
        .wait_text("tr[data-server=robot-321]", "Not seen yet")
        .await;
    assert!(row.contains("default"), "the config's name shows: {row}");

    // The Bootstrap… dialog lists the rescue system's disk and shows the plan.
    browser
        .js(
            "[...document.querySelectorAll('tr[data-server=robot-321] button')].find((b) => b.textContent === 'Bootstrap…').click();",
            vec![],
        )
        .await
        .unwrap();
    let dialog = browser.wait_text("dialog[open]", bench.disk.path()).await;
    assert!(dialog.contains("Bootstrap worker-1"), "{dialog}");
    browser.click("#show-plan").await;
    browser
        .wait_text("#bootstrap-plan", "Bootstrap plan for worker-1")
        .await;
    browser.click("#bootstrap-form button[type=submit]").await;
    // The browser asks before overwriting the disk.
    let question = browser.client().get_alert_text().await.unwrap();
    assert!(question.contains("Bootstrap worker-1?"), "{question}");
    browser.client().accept_alert().await.unwrap();

    // The job's page follows the log live, up to 100 % and the job's success.
    browser.wait_text("h1", "bootstrap").await;
    browser.wait_text("#job-log", "written 100 %").await;
    browser.wait_text("#job-status", "succeeded").await;
    browser.wait_text("#log-state", "ended").await;
    let log = browser.wait_text("#job-log", "Talos is on").await;
    assert!(log.contains("step 3/5: write the Talos image"), "{log}");
    browser.screenshot("bootstrap-log").await;
    let raw = &crate::http::api_bootstrap::image().raw;
    assert_eq!(&bench.disk.contents()[..raw.len()], raw.as_slice());

    // The servers page, then the node boots Talos and fetches its config from 127.0.0.1.
    browser.goto(&url("/servers")).await;
    browser
        .wait_text("tr[data-server=robot-321]", "booting Talos")
        .await;
    browser.wait_text("#live-state", "Live").await;
    mark_page(&browser).await;
    // Bootstrapped by us: the node sends its SMBIOS UUID, as the image's `talos.config=` says.
    let node_uuid = server
        .store()
        .list_servers()
        .await
        .unwrap()
        .remove(0)
        .uuid
        .expect("the bootstrap recorded the UUID");
    let served = crate::http::server::client()
        .get(url("/config"))
        .query(&[("uuid", node_uuid)])
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200, "the node (127.0.0.1) gets its config");
    let yaml = served.text().await.unwrap();
    assert_eq!(
        crate::http::server::node_install_disk(&yaml).as_deref(),
        Some(bench.disk.path()),
        "Talos installs to the disk from the form: {yaml}"
    );
    let row = browser
        .wait_text("tr[data-server=robot-321] .status", "Configured")
        .await;
    assert!(!row.contains("Not seen yet"), "{row}");
    // The label and taint job finds the node in the cluster.
    browser
        .wait_text("tr[data-server=robot-321]", "in cluster")
        .await;
    browser
        .wait_text(
            "tr[data-server=robot-321] .status",
            "Configured, in cluster",
        )
        .await;
    assert!(
        same_page(&browser).await,
        "the status changed without a reload"
    );

    // Now a live node: the dialog warns and offers force; without it the API refuses and the
    // dialog says why, and no bootstrap is queued.
    let jobs_before = bench.server.store().list_jobs().await.unwrap().len();
    browser.goto(&url("/servers")).await;
    browser
        .wait_text(
            "tr[data-server=robot-321] .status",
            "Configured, in cluster",
        )
        .await;
    browser
        .js(
            "[...document.querySelectorAll('tr[data-server=robot-321] button')].find((b) => b.textContent === 'Bootstrap…').click();",
            vec![],
        )
        .await
        .unwrap();
    let warning = browser
        .wait_text("#bootstrap-live", "runs Talos with its machine config")
        .await;
    assert!(warning.contains("Reset it first"), "{warning}");
    let dialog = browser.wait_text("dialog[open]", "Force").await;
    assert!(
        dialog.contains("Bootstrap even a running node"),
        "the force checkbox is explained: {dialog}"
    );
    browser.click("#bootstrap-form button[type=submit]").await;
    browser.client().accept_alert().await.unwrap();
    browser
        .wait_text("dialog[open]", "reset it first or pass force")
        .await;
    assert_eq!(
        bench.server.store().list_jobs().await.unwrap().len(),
        jobs_before
    );
    browser.close().await;
}

#[tokio::test]
async fn without_its_live_stream_the_servers_page_polls() {
    let server = TestServer::start(Backend::Sqlite).await;
    add_server(&server, ProviderKind::HetznerRobot, "7", "worker-1").await;
    let browser = Browser::start().await;
    // A proxy that cuts server-sent events, as the browser sees it: the stream never opens.
    browser.cdp("Network.enable", json!({})).await;
    browser
        .cdp(
            "Network.setBlockedURLs",
            json!({"urls": ["*/api/v1/servers/events"]}),
        )
        .await;

    browser.goto(&server.url("/")).await;
    browser.type_into("input[name=secret]", &server.token).await;
    browser.click("form.login button[type=submit]").await;
    browser.wait_text("#servers tbody", "worker-1").await;
    browser
        .wait_text("#live-state", "Refreshing every 10 s")
        .await;
    mark_page(&browser).await;

    // A server synced meanwhile shows within a refresh, without a reload.
    add_server(&server, ProviderKind::HetznerRobot, "8", "worker-2").await;
    browser.wait_text("#servers tbody", "worker-2").await;
    assert!(
        same_page(&browser).await,
        "the page polled, it was not reloaded"
    );
    browser.close().await;
}

/// A config whose installer is a Talos minor newer than every contract is listed and edited
/// with the service's warning, and the installer field offers every contract's release.
#[tokio::test]
async fn a_config_of_a_newer_talos_shows_its_warning() {
    let server = TestServer::start(Backend::Sqlite).await;
    let config = server
        .expect(
            Method::POST,
            "/api/v1/configs",
            Some(json!({"name": "next", "install_image": "ghcr.io/siderolabs/installer:v1.15.0"})),
            201,
        )
        .await;
    let browser = Browser::start().await;
    sign_in(&browser, &server).await;
    let expected = format!(
        "install_image: Talos v1.15 is newer than the newest config format talos-manager knows \
         ({0}); its configs are generated for {0}",
        talos_manager_core::talos::TalosVersion::LATEST
    );
    browser.goto(&server.url("/configs")).await;
    browser.wait_text("table .warning", &expected).await;
    browser
        .goto(&server.url(&format!("/configs?edit={}", config["id"].as_str().unwrap())))
        .await;
    browser.wait_text("#config-form .warning", &expected).await;
    let choices = browser
        .js(
            "return [...document.querySelectorAll('#supported-installers option')].map((o) => o.value).join(' ');",
            vec![],
        )
        .await
        .unwrap();
    let choices = choices.as_str().unwrap_or_default().to_owned();
    for version in talos_manager_core::talos::TalosVersion::ALL {
        // Each release's own installer: ghcr's up to 1.13, the Image Factory's from 1.14.
        assert!(
            choices.contains(&talos_manager_core::image_factory::installer_image(
                talos_manager_core::image_factory::DEFAULT_FACTORY_URL,
                None,
                version.release()
            )),
            "{choices}"
        );
    }
    browser.close().await;
}

/// Signs in with the test token and waits for the servers page.
async fn sign_in(browser: &Browser, server: &TestServer) {
    browser.goto(&server.url("/")).await;
    browser.type_into("input[name=secret]", &server.token).await;
    browser.click("form.login button[type=submit]").await;
    browser.wait_text("h1", "Servers").await;
}

/// Clicks the button labelled `label` inside `scope` (row actions have no ids); again when a
/// live update replaced the row in between. The click comes after the script returns, so a
/// question it asks (`confirm`) does not fail the script.
async fn click_button(browser: &Browser, scope: &str, label: &str) {
    wait_for(
        format!("a button {label:?} in {scope}"),
        PATIENCE,
        Duration::from_millis(100),
        || async {
            let clicked = browser
                .js(
                    "const b = [...document.querySelectorAll(arguments[0] + ' button')].find((b) => b.textContent === arguments[1]); if (b) setTimeout(() => b.click(), 0); return Boolean(b);",
                    vec![scope.into(), label.into()],
                )
                .await
                .unwrap_or(Value::Bool(false));
            if clicked == Value::Bool(true) {
                Ok(())
            } else {
                Err(format!("the page: {}", browser.body().await))
            }
        },
    )
    .await;
}

/// Accepts the browser's confirmation question; answers its text.
async fn accept_question(browser: &Browser) -> String {
    let text = wait_for(
        "a question to be asked",
        PATIENCE,
        Duration::from_millis(100),
        || async {
            browser
                .client()
                .get_alert_text()
                .await
                .map_err(|error| error.to_string())
        },
    )
    .await;
    browser.client().accept_alert().await.unwrap();
    text
}

/// The stored job whose page the browser shows (`/jobs?id=<id>`).
async fn shown_job(browser: &Browser, server: &TestServer) -> talos_manager_core::store::Job {
    let url = browser.client().current_url().await.unwrap();
    let id = url
        .query_pairs()
        .find(|(name, _)| name == "id")
        .unwrap_or_else(|| panic!("the browser shows no job: {url}"))
        .1
        .parse()
        .unwrap();
    server
        .store()
        .get_job(talos_manager_core::ids::JobId(id))
        .await
        .unwrap()
}

/// A cluster `prod` whose control plane `control-plane-1` (robot-7, 127.0.113.7) is
/// configured, Talos versions v1.10.4 (the default), v1.10.5 and v1.11.0, and, with
/// `schematic`, a default schematic registered with the Image Factory. Answers the cluster.
async fn configured_cluster(server: &TestServer, schematic: bool) -> Value {
    server
        .factory()
        .set_versions(&["v1.10.4", "v1.10.5", "v1.11.0"]);
    let (cluster, config) = server.cluster_and_config(json!({"name": "default"})).await;
    add_server(server, ProviderKind::HetznerRobot, "7", "control-plane-1").await;
    server
        .expect(
            Method::PATCH,
            "/api/v1/servers/robot-7",
            Some(json!({"cluster_id": cluster["id"]})),
            200,
        )
        .await;
    server
        .expect(
            Method::POST,
            "/api/v1/machine-configs",
            Some(json!({
                "server_id": "robot-7",
                "config_id": config["id"],
                "hostname": "control-plane-1",
            })),
            201,
        )
        .await;
    if schematic {
        set_default_schematic(server).await;
    } else {
        server
            .expect(
                Method::PUT,
                "/api/v1/settings",
                Some(json!({"talos_version": "v1.10.4"})),
                200,
            )
            .await;
    }
    cluster
}

/// Registers a schematic `amd` and makes it the default, with Talos v1.10.4.
async fn set_default_schematic(server: &TestServer) {
    let schematic = server
        .expect(
            Method::POST,
            "/api/v1/schematics",
            Some(json!({"name": "amd"})),
            201,
        )
        .await;
    server
        .expect(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"talos_version": "v1.10.4", "default_schematic_id": schematic["id"]})),
            200,
        )
        .await;
}

#[tokio::test]
async fn a_user_upgrades_and_resets_a_server_from_its_dialogs() {
    // No worker runs: the jobs stay queued, which is all the dialogs need.
    let server = TestServer::start(Backend::Sqlite).await;
    configured_cluster(&server, false).await;
    let browser = Browser::start().await;
    sign_in(&browser, &server).await;
    let row = "tr[data-server=robot-7]";
    browser.wait_text(row, "Reset…").await;

    // Upgrade…: the default version is chosen, the commands follow the version chosen.
    click_button(&browser, row, "Upgrade…").await;
    let dialog = browser.wait_text("dialog[open]", "talosctl").await;
    assert!(dialog.contains("Upgrade: control-plane-1"), "{dialog}");
    assert!(dialog.contains("Or run it yourself"), "{dialog}");
    let chosen = browser
        .element("#upgrade-form select[name=talos_version]")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(chosen.as_deref(), Some("v1.10.4"), "the settings' version");
    browser
        .select("#upgrade-form select[name=talos_version]", "v1.11.0")
        .await;
    browser.wait_text("#upgrade-runbook", "v1.11.0").await;
    // Without a schematic there is no installer to upgrade to: the API's reason shows in the
    // dialog.
    browser.click("#upgrade-form button[type=submit]").await;
    let question = accept_question(&browser).await;
    assert!(
        question.contains("Upgrade control-plane-1 to Talos v1.11.0?"),
        "{question}"
    );
    let refusal = browser
        .wait_text("#upgrade-form .form-issues", "no Image Factory schematic")
        .await;
    assert!(refusal.contains("control-plane-1"), "{refusal}");
    assert!(
        !refusal.contains("(input)"),
        "an issue of no field shows as a sentence: {refusal}"
    );
    // With a default schematic the upgrade is queued and its page opens.
    set_default_schematic(&server).await;
    browser.click("#upgrade-form button[type=submit]").await;
    accept_question(&browser).await;
    browser.wait_text("h1", "upgrade").await;
    browser.wait_text("#job-status", "queued").await;
    let job = shown_job(&browser, &server).await;
    assert_eq!(job.kind, "upgrade");
    assert_eq!(job.args["talos_version"], "v1.11.0", "{}", job.args);
    // Cancelled from its page, it frees the cluster for the reset.
    click_button(&browser, "main", "Cancel job").await;
    accept_question(&browser).await;
    browser.wait_text("#job-status", "cancelled").await;

    // Reset…: the three profiles, each explained, and force.
    browser.goto(&server.url("/servers")).await;
    click_button(&browser, row, "Reset…").await;
    let dialog = browser
        .wait_text("dialog[open]", "Reset control-plane-1")
        .await;
    for sentence in [
        "comes back in maintenance mode, asking for a config",
        "powers the server off",
        "boots the server into the rescue system, ready for a new bootstrap",
        "destroys the cluster's state",
        "machine config is removed",
    ] {
        assert!(dialog.contains(sentence), "{sentence:?} in {dialog}");
    }
    let maintenance = browser
        .element("#reset-profile-maintenance")
        .await
        .prop("checked")
        .await
        .unwrap();
    assert_eq!(
        maintenance.as_deref(),
        Some("true"),
        "the gentlest is chosen"
    );
    browser.screenshot("reset-dialog").await;
    browser.click("#reset-profile-wipe").await;
    browser.click("#reset-form input[name=force]").await;
    // Nothing is sent before the question naming the server is answered.
    browser.click("#reset-continue").await;
    let question = browser
        .wait_text("#reset-question", "Reset control-plane-1")
        .await;
    assert!(
        question.contains("(robot-7, 127.0.113.7) and wipe its whole system disk?"),
        "{question}"
    );
    assert!(question.contains("Forced"), "{question}");
    let jobs = server.expect(Method::GET, "/api/v1/jobs", None, 200).await;
    assert!(
        !jobs
            .as_array()
            .unwrap()
            .iter()
            .any(|job| job["kind"] == "reset"),
        "{jobs}"
    );
    browser.click("#reset-form button[type=submit]").await;

    // The job's page: kind reset, its log.
    browser.wait_text("h1", "reset").await;
    browser.wait_text("#job-status", "queued").await;
    browser.wait_text("#log-title", "Log").await;
    browser.element("#job-log").await;
    let job = shown_job(&browser, &server).await;
    assert_eq!(job.kind, "reset");
    assert_eq!(job.args, json!({"profile": "wipe", "force": true}));

    // The row links the queued reset; a reboot meanwhile is refused in its dialog.
    browser.goto(&server.url("/servers")).await;
    browser
        .wait_text(&format!("{row} a.job-state"), "reset queued")
        .await;
    click_button(&browser, row, "Reboot…").await;
    let dialog = browser.wait_text("dialog[open]", "talosctl").await;
    assert!(dialog.contains("Reboot: control-plane-1"), "{dialog}");
    browser.click("#reboot-form button[type=submit]").await;
    let question = accept_question(&browser).await;
    assert!(question.contains("Reboot control-plane-1?"), "{question}");
    browser
        .wait_text("#reboot-form .form-issues", "already queued or running")
        .await;
    browser.close().await;
}

#[tokio::test]
async fn a_user_upgrades_a_cluster_and_a_second_change_waits_for_it() {
    let server = TestServer::start(Backend::Sqlite).await;
    let cluster = configured_cluster(&server, true).await;
    let browser = Browser::start().await;
    sign_in(&browser, &server).await;
    let row = format!("tr[data-cluster='{}']", cluster["id"].as_str().unwrap());

    browser.goto(&server.url("/clusters")).await;
    click_button(&browser, &row, "Upgrade…").await;
    let dialog = browser
        .wait_text("dialog[open]", "Upgrade cluster prod")
        .await;
    assert!(
        dialog.contains("Control planes first, one node at a time"),
        "{dialog}"
    );
    assert!(dialog.contains("drained"), "{dialog}");
    assert!(dialog.contains("stops at the first failure"), "{dialog}");
    let chosen = browser
        .element("#cluster-upgrade-form select[name=talos_version]")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(chosen.as_deref(), Some("v1.10.4"), "the settings' version");
    browser
        .select(
            "#cluster-upgrade-form select[name=talos_version]",
            "v1.10.5",
        )
        .await;
    browser.screenshot("cluster-upgrade-dialog").await;
    browser
        .click("#cluster-upgrade-form button[type=submit]")
        .await;
    let question = accept_question(&browser).await;
    assert!(
        question.contains("every node of prod to Talos v1.10.5"),
        "{question}"
    );
    browser.wait_text("h1", "upgrade").await;
    browser.wait_text("#job-status", "queued").await;
    let job = shown_job(&browser, &server).await;
    assert_eq!(job.kind, "upgrade");
    assert_eq!(job.server_id, None, "the whole cluster");
    assert_eq!(job.args["talos_version"], "v1.10.5", "{}", job.args);

    // A second upgrade, or a reboot, while the first is queued: the API's 409 in the dialog,
    // and no second job.
    browser.goto(&server.url("/clusters")).await;
    click_button(&browser, &row, "Upgrade…").await;
    browser
        .wait_text("dialog[open]", "Upgrade cluster prod")
        .await;
    browser
        .click("#cluster-upgrade-form button[type=submit]")
        .await;
    accept_question(&browser).await;
    let refusal = browser
        .wait_text(
            "#cluster-upgrade-form .form-issues",
            "already queued or running",
        )
        .await;
    assert!(refusal.contains("follow or cancel it first"), "{refusal}");
    browser.click("dialog[open] button[data-close]").await;
    click_button(&browser, &row, "Reboot…").await;
    let dialog = browser
        .wait_text("dialog[open]", "Reboot cluster prod")
        .await;
    assert!(
        dialog.contains("Control planes first, one node at a time"),
        "{dialog}"
    );
    browser
        .click("#cluster-reboot-form button[type=submit]")
        .await;
    let question = accept_question(&browser).await;
    assert!(question.contains("Reboot every node of prod"), "{question}");
    browser
        .wait_text(
            "#cluster-reboot-form .form-issues",
            "already queued or running",
        )
        .await;
    let jobs = server.expect(Method::GET, "/api/v1/jobs", None, 200).await;
    assert_eq!(jobs.as_array().unwrap().len(), 1, "{jobs}");
    browser.close().await;
}

#[tokio::test]
async fn a_user_bootstraps_etcd_of_a_new_cluster_and_follows_its_log() {
    let server = TestServer::start(Backend::Sqlite).await;
    // A new cluster `prod` whose control plane fetched its config (recorded without the
    // `/config` hook, which would queue the bootstrap by itself); no worker runs yet.
    let fleet = new_cluster(&server, &["control-plane-1", "worker-1"], 201).await;
    server
        .store()
        .record_config_request(
            fleet.nodes["control-plane-1"].0,
            time::OffsetDateTime::now_utc(),
            true,
        )
        .await
        .unwrap();
    // An imported cluster runs already: it has no button.
    let bundle = talos_manager_core::testing::fleet::secrets_bundle().await;
    let imported = server
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(json!({"name": "imported", "endpoint": "https://127.0.0.1:6443", "secrets": bundle.to_yaml()})),
            201,
        )
        .await;
    let browser = Browser::start().await;
    sign_in(&browser, &server).await;
    let row = format!("tr[data-cluster='{}']", fleet.cluster);
    let imported_row = format!("tr[data-cluster='{}']", imported["id"].as_str().unwrap());

    browser.goto(&server.url("/clusters")).await;
    browser.wait_text(&row, "Bootstrap etcd…").await;
    let text = browser.wait_text(&imported_row, "Upgrade…").await;
    assert!(!text.contains("Bootstrap etcd"), "{text}");

    // The question names the cluster; the job's page opens.
    click_button(&browser, &row, "Bootstrap etcd…").await;
    let question = accept_question(&browser).await;
    assert!(question.contains("Bootstrap etcd of prod?"), "{question}");
    assert!(question.contains("no undo"), "{question}");
    browser.wait_text("h1", "cluster_bootstrap").await;
    browser.wait_text("#job-status", "queued").await;
    let job = shown_job(&browser, &server).await;
    assert_eq!(job.kind, "cluster_bootstrap");
    assert_eq!(job.args["cluster_id"], fleet.cluster.0, "{}", job.args);
    let job_page = browser.client().current_url().await.unwrap().to_string();

    // Asked again while it is queued: the API's 409, readable, and no second job.
    browser.goto(&server.url("/clusters")).await;
    click_button(&browser, &row, "Bootstrap etcd…").await;
    accept_question(&browser).await;
    let message = browser
        .wait_text("#flash", "queued or running already")
        .await;
    assert!(
        message.contains(&format!(
            "a bootstrap of cluster prod is queued or running already (job {})",
            job.id
        )),
        "{message}"
    );

    // The worker runs it: the job's page follows the log live, to its end.
    browser.goto(&job_page).await;
    browser.wait_text("#log-state", "Following the log").await;
    let _worker = start_worker(&server, &fleet);
    browser.wait_text("#job-log", "Bootstrap accepted").await;
    browser.wait_text("#job-status", "succeeded").await;
    let log = browser
        .wait_text("#job-log", "recorded as bootstrapped")
        .await;
    assert!(log.contains("bootstrapping control-plane-1"), "{log}");
    assert!(fleet.talos.bootstrapped());

    // Bootstrapped: the button is gone.
    browser.goto(&server.url("/clusters")).await;
    let text = browser.wait_text(&row, "Upgrade…").await;
    assert!(!text.contains("Bootstrap etcd"), "{text}");
    browser.close().await;
}

/// The clusters page shows each cluster's health at a glance (badge, etcd, nodes, earliest
/// expiry); its detail page the reasons, etcd members, nodes and certificates. One control
/// plane of the fake Talos API is down.
#[tokio::test]
async fn a_user_sees_a_clusters_health_at_a_glance_and_in_detail() {
    let setup = super::cluster_health::setup(Backend::Sqlite, 105, true).await;
    let server = &setup.server;
    setup
        .talos
        .take_down(setup.fleet.server("control-plane-2").address);
    setup.kubernetes.set_ready("control-plane-2", false);
    let browser = Browser::start().await;
    sign_in(&browser, server).await;
    browser.goto(&server.url("/clusters")).await;
    let cell = format!("td[data-health='{}']", setup.fleet.cluster);
    let summary = browser.wait_text(&cell, "degraded").await;
    assert!(summary.contains("etcd 2/3"), "{summary}");
    assert!(summary.contains("nodes 3/4"), "{summary}");
    assert!(summary.contains("expires"), "{summary}");
    browser.screenshot("clusters-health").await;

    browser.click(&format!("{cell} a.health-summary")).await;
    browser.wait_text("h1", "Health of prod").await;
    let reasons = browser
        .wait_text(
            ".health-reasons",
            "control-plane-2: its Talos API does not answer",
        )
        .await;
    assert!(
        reasons.contains("node control-plane-2 is not Ready"),
        "{reasons}"
    );
    let leader = browser
        .wait_text("tr[data-member='control-plane-1']", "leader")
        .await;
    assert!(leader.contains("yes"), "{leader}");
    let down = browser
        .wait_text("tr[data-node='control-plane-2']", "no answer")
        .await;
    assert!(down.contains("no"), "{down}");
    browser
        .wait_text("tr[data-certificate='etcd_ca']", "etcd CA")
        .await;
    browser.screenshot("cluster-health").await;
    browser.close().await;
}
