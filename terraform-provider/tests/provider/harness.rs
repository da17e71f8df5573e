//! The talos-manager service in the test process on a loopback port
//! (`talos_manager_http::testing`: fresh SQLite database, one API token, the fake Hetzner
//! Robot and Cloud APIs and the fake Image Factory), and the real Terraform CLI running the
//! freshly built provider through `dev_overrides` in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use talos_manager_core::Backend;
use talos_manager_core::ProviderKind;
use talos_manager_core::store::ConfigFields;
use talos_manager_http::testing::{ServiceSettings, TestService};

/// The provider's address in the test configurations.
const SOURCE: &str = "talos-manager/talosmanager";

/// The public host name the service has (`HOST`), in the `talos.config=` URL of schematics.
pub(crate) const HOST: &str = "tm.example.com";

/// The service ([`TestService`]), running until dropped; its fields and methods are reached
/// through it.
pub(crate) struct Service(TestService);

impl std::ops::Deref for Service {
    type Target = TestService;

    fn deref(&self) -> &TestService {
        &self.0
    }
}

impl Service {
    pub(crate) async fn start() -> Service {
        Service::start_with(Service::default_bootstrap_settings()).await
    }

    /// The bootstrap settings of [`Service::start`]: no SSH key, the public Image Factory.
    pub(crate) fn default_bootstrap_settings() -> talos_manager_core::jobs::BootstrapSettings {
        talos_manager_core::jobs::BootstrapSettings {
            ssh_private_key: None,
            rescue_ssh_port: 22,
            rescue_timeout: std::time::Duration::from_secs(600),
            rescue_poll: std::time::Duration::from_secs(2),
            environment: talos_manager_core::bootstrap::BootstrapEnvironment {
                host: None,
                image_factory_url: talos_manager_core::image_factory::DEFAULT_FACTORY_URL
                    .to_owned(),
                amd64_image_url: None,
                arm64_image_url: None,
            },
        }
    }

    /// The service with these bootstrap settings (SSH key, rescue port, image server). It runs
    /// no job worker: start one with [`TestService::providers`] where jobs must run.
    pub(crate) async fn start_with(
        bootstrap: talos_manager_core::jobs::BootstrapSettings,
    ) -> Service {
        let mut settings = ServiceSettings::new(Backend::Sqlite)
            .factory(None, Some(HOST))
            .bootstrap(bootstrap);
        settings.token_name = "terraform".into();
        settings.basic_auth_password = "test-password".into();
        Service(TestService::start(settings).await)
    }

    /// The service whose cluster health checks reach nodes as `talos` says (the fake Talos
    /// API's port).
    pub(crate) async fn start_with_talos(
        talos: talos_manager_core::jobs::TalosSettings,
    ) -> Service {
        let mut settings = ServiceSettings::new(Backend::Sqlite)
            .factory(None, Some(HOST))
            .bootstrap(Service::default_bootstrap_settings())
            .talos(talos);
        settings.token_name = "terraform".into();
        settings.basic_auth_password = "test-password".into();
        Service(TestService::start(settings).await)
    }

    /// Syncs every provider account from the fakes, as the service's periodic sync does.
    pub(crate) async fn sync(&self) {
        let report = talos_manager_core::sync::sync_all(self.store(), self.providers(), None)
            .await
            .unwrap();
        assert!(report.failures.is_empty(), "a sync failed: {report}");
    }

    /// Adds a synced server as the provider sync would; returns its API id.
    pub(crate) async fn add_server(
        &self,
        provider: ProviderKind,
        provider_id: &str,
        name: &str,
    ) -> String {
        talos_manager_core::testing::fleet::add_server(
            self.store(),
            provider,
            provider_id,
            name,
            &format!("127.0.113.{provider_id}"),
        )
        .await
        .unwrap();
        let prefix = match provider {
            ProviderKind::HetznerRobot => "robot",
            ProviderKind::HetznerCloud => "cloud",
        };
        format!("{prefix}-{provider_id}")
    }

    /// Adds a config template (the API for configs is not there yet); returns its id.
    pub(crate) async fn add_config(&self, name: &str) -> String {
        let config = self
            .store()
            .create_config(&ConfigFields {
                name: name.into(),
                install_image: "ghcr.io/siderolabs/installer:v1.10.4".into(),
                kubernetes_version: "1.30.1".into(),
                kubespan: true,
                patch: String::new(),
                patch_control_plane: String::new(),
                patch_worker: String::new(),
            })
            .await
            .unwrap();
        config.id.to_string()
    }
}

/// The CLI the tests run: `TALOS_MANAGER_TERRAFORM` (Terraform 1.0.3, or a newer Terraform or
/// OpenTofu that `scripts/test` built, when it reruns this suite on each), else
/// `.cache/terraform/terraform` at the workspace root. Missing is a failure, never a skip.
fn terraform_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TALOS_MANAGER_TERRAFORM") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "TALOS_MANAGER_TERRAFORM is {}, which does not exist: scripts/test builds the newer \
             CLIs into .cache/ (see docs/testing.md)",
            path.display()
        );
        return path;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/terraform/terraform");
    assert!(
        path.is_file(),
        "the Terraform CLI is missing: neither TALOS_MANAGER_TERRAFORM is set nor {} exists. \
         Run scripts/test once (it installs Terraform 1.0.3 there), or set \
         TALOS_MANAGER_TERRAFORM to a Terraform 1.0.3 binary",
        path.display()
    );
    path
}

/// The CLI's name and version as it prints them (`Terraform v1.0.3`, `OpenTofu v1.12.6`),
/// asked once per test process: every failure message of the harness starts with it, so a
/// failure says which CLI it was on.
pub(crate) fn cli_version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        let binary = terraform_binary();
        let output = Command::new(&binary)
            .arg("version")
            .env("CHECKPOINT_DISABLE", "1")
            .output()
            .unwrap_or_else(|error| panic!("failed to run {}: {error}", binary.display()));
        let stdout = String::from_utf8_lossy(&output.stdout);
        // The first line that is a name and a version (a warning about the CLI configuration
        // may come first).
        let first = stdout
            .lines()
            .map(str::trim)
            .find(|line| line.starts_with("Terraform v") || line.starts_with("OpenTofu v"))
            .unwrap_or_default()
            .to_owned();
        assert!(
            output.status.success() && !first.is_empty(),
            "{} version did not print a name and version:\n{stdout}{}",
            binary.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        first
    })
}

/// Whether the CLI is the old Terraform 1.0.3 (plugin protocol 6.0 only): the newer CLIs'
/// tests (ephemeral resources) need protocol 6.7+.
pub(crate) fn cli_is_legacy() -> bool {
    cli_version() == "Terraform v1.0.3"
}

/// The registry host the CLI gives a provider source without one (`talos-manager/talosmanager`):
/// OpenTofu's own registry, else Terraform's.
pub(crate) fn registry_host() -> &'static str {
    if cli_version().starts_with("OpenTofu") {
        "registry.opentofu.org"
    } else {
        "registry.terraform.io"
    }
}

/// Whether a plan replaces a tainted resource, in the words of either CLI (Terraform 1.0.3: "is
/// tainted, so must be replaced"; OpenTofu: "is tainted, so it must be replaced").
pub(crate) fn plans_to_replace_tainted(plan: &str) -> bool {
    plan.contains("is tainted, so must be replaced")
        || plan.contains("is tainted, so it must be replaced")
}

/// What a Terraform command did.
pub(crate) struct Run {
    pub(crate) code: i32,
    /// stdout and stderr.
    pub(crate) output: String,
}

/// A Terraform working directory using the freshly built provider.
pub(crate) struct Terraform {
    directory: tempfile::TempDir,
    terraform: PathBuf,
    env: Vec<(String, String)>,
}

impl Terraform {
    /// A working directory whose provider talks to `service` with its token (from the
    /// environment, as users would set it).
    pub(crate) fn new(service: &Service) -> Terraform {
        let mut terraform = Terraform::without_credentials(service);
        terraform.env("TALOS_MANAGER_TOKEN", &service.token);
        terraform
    }

    /// A working directory with the endpoint but no credentials.
    pub(crate) fn without_credentials(service: &Service) -> Terraform {
        let directory = tempfile::Builder::new()
            .prefix("talos-manager-terraform-")
            .tempdir()
            .unwrap();
        let plugins = directory.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_terraform-provider-talosmanager"),
            plugins.join("terraform-provider-talosmanager"),
        )
        .unwrap();
        let cli_config = directory.path().join("cli.tfrc");
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"{SOURCE}\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
                plugins.display()
            ),
        )
        .unwrap();
        // Printed for each test (nextest shows it with a failure's output).
        eprintln!("terraform CLI: {}", cli_version());
        let mut terraform = Terraform {
            directory,
            terraform: terraform_binary(),
            env: Vec::new(),
        };
        terraform.env("TF_CLI_CONFIG_FILE", &cli_config.display().to_string());
        terraform.env("TALOS_MANAGER_ENDPOINT", &service.base);
        terraform
    }

    /// Installs the provider as users will: from a filesystem mirror, with `terraform init`
    /// (instead of `dev_overrides`, which make init unnecessary).
    pub(crate) fn use_filesystem_mirror(&self) {
        let mirror = self.directory.path().join("mirror");
        let registry = registry_host();
        let package = mirror.join(format!(
            "{registry}/talos-manager/talosmanager/0.1.0/linux_amd64"
        ));
        std::fs::create_dir_all(&package).unwrap();
        let binary = package.join("terraform-provider-talosmanager_v0.1.0");
        let built = env!("CARGO_BIN_EXE_terraform-provider-talosmanager");
        if std::fs::hard_link(built, &binary).is_err() {
            std::fs::copy(built, &binary).unwrap();
        }
        std::fs::write(
            self.directory.path().join("cli.tfrc"),
            format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"{registry}/talos-manager/*\"]\n  }}\n  direct {{\n    exclude = [\"{registry}/talos-manager/*\"]\n  }}\n}}\n",
                mirror.display()
            ),
        )
        .unwrap();
    }

    /// Sets an environment variable for every command.
    pub(crate) fn env(&mut self, name: &str, value: &str) {
        self.env.retain(|(existing, _)| existing != name);
        self.env.push((name.to_owned(), value.to_owned()));
    }

    /// Writes `main.tf`: the provider requirement, then `body`.
    pub(crate) fn write(&self, body: &str) {
        let text = format!(
            "terraform {{\n  required_providers {{\n    talosmanager = {{\n      source = \"{SOURCE}\"\n    }}\n  }}\n}}\n\n{body}\n"
        );
        std::fs::write(self.directory.path().join("main.tf"), text).unwrap();
    }

    /// A file of the working directory (the state, a file a provisioner wrote…).
    #[track_caller]
    pub(crate) fn read_file(&self, name: &str) -> String {
        let path = self.directory.path().join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
    }

    /// Writes a file into the working directory as it is.
    pub(crate) fn write_file(&self, name: &str, text: &str) {
        std::fs::write(self.directory.path().join(name), text).unwrap();
    }

    /// Runs `terraform <args> -no-color` (and `-input=false` where Terraform takes it).
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        let output = self
            .command(args)
            .output()
            .unwrap_or_else(|error| panic!("failed to run {}: {error}", self.terraform.display()));
        Run {
            code: output.status.code().unwrap_or(-1),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }

    /// Starts the command [`Terraform::run`] runs, in a process group of its own (with the
    /// provider it starts), as a terminal would: a Ctrl-C is `kill -INT -<pid>`.
    pub(crate) fn spawn(&self, args: &[&str]) -> std::process::Child {
        use std::os::unix::process::CommandExt as _;
        self.command(args)
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("failed to run {}: {error}", self.terraform.display()))
    }

    fn command(&self, args: &[&str]) -> Command {
        // Options go after the subcommand (`state rm` is two words), before its arguments.
        let split = if args.first() == Some(&"state") { 2 } else { 1 }.min(args.len());
        let (subcommand, arguments) = args.split_at(split);
        let mut command = Command::new(&self.terraform);
        command.args(subcommand).arg("-no-color");
        if matches!(
            args.first(),
            Some(&("plan" | "apply" | "destroy" | "import"))
        ) {
            command.arg("-input=false");
        }
        command
            .args(arguments)
            .current_dir(self.directory.path())
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env_remove("TF_LOG")
            .env_remove("TALOS_MANAGER_TOKEN")
            .env_remove("TALOS_MANAGER_PASSWORD")
            .env_remove("TALOS_MANAGER_ENDPOINT");
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command
    }

    /// Runs a command that must succeed; returns its output.
    #[track_caller]
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(
            run.code,
            0,
            "{} {args:?} failed:\n{}",
            cli_version(),
            run.output
        );
        run.output
    }

    /// Runs a command that must fail; returns its output.
    #[track_caller]
    pub(crate) fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_ne!(
            run.code,
            0,
            "{} {args:?} succeeded:\n{}",
            cli_version(),
            run.output
        );
        run.output
    }

    /// Asserts that `terraform plan` finds nothing to change.
    #[track_caller]
    pub(crate) fn assert_no_changes(&self) {
        let run = self.run(&["plan", "-detailed-exitcode"]);
        assert_eq!(
            run.code,
            0,
            "{}: the plan is not empty:\n{}",
            cli_version(),
            run.output
        );
    }

    /// `terraform show -json`.
    pub(crate) fn show(&self) -> Value {
        let output = self.ok(&["show", "-json"]);
        let json = output
            .lines()
            .find(|line| line.starts_with('{'))
            .unwrap_or_else(|| panic!("terraform show -json printed no JSON:\n{output}"));
        serde_json::from_str(json).unwrap()
    }

    /// The values of the resource at `address` in the state, `None` when it is not there.
    pub(crate) fn resource(&self, address: &str) -> Option<Value> {
        let state = self.show();
        state["values"]["root_module"]["resources"]
            .as_array()?
            .iter()
            .find(|resource| resource["address"] == address)
            .map(|resource| resource["values"].clone())
    }
}

/// `text` with every run of whitespace as one space: Terraform wraps diagnostics to the width
/// of a terminal.
pub(crate) fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
