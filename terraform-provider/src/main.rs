//! `terraform-provider-talosmanager`: the go-plugin handshake, AutoMTLS and the gRPC server.
//!
//! Terraform starts this binary with no arguments and a magic cookie in the environment. It
//! listens on a Unix socket in a fresh private directory, prints one handshake line on stdout
//! (`1|6|unix|<socket>|grpc|<server certificate>`), serves tfplugin6 over TLS that accepts
//! only Terraform's own client certificate, and exits when Terraform calls
//! `GRPCController.Shutdown` (or on SIGTERM). SIGINT is ignored, as go-plugin plugins do: a
//! Ctrl-C in the terminal reaches Terraform too, which asks the provider to stop
//! (`StopProvider`), so that a create in flight (a bootstrap being waited for) still returns
//! its state. With `--debug`, SIGINT stops the provider.
//!
//! `--debug` serves without Terraform starting it: it prints a `TF_REATTACH_PROVIDERS` value
//! to export, so Terraform attaches to this process (plaintext, as go-plugin's reattach is).

use std::io::Write as _;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use futures_util::Stream;
use terraform_provider_talosmanager::goplugin::grpc_controller_server::GrpcControllerServer;
use terraform_provider_talosmanager::server::{Controller, ProviderService};
use terraform_provider_talosmanager::tfplugin6::provider_server::ProviderServer;
use terraform_provider_talosmanager::tls;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, mpsc};
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;

/// The cookie go-plugin passes so a plugin knows Terraform started it.
const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
const MAGIC_COOKIE_VALUE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// The plugin protocol this provider speaks.
const PROTOCOL_VERSION: &str = "6";
/// The provider address `--debug` prints for TF_REATTACH_PROVIDERS.
const DEFAULT_ADDRESS: &str = "registry.terraform.io/talos-manager/talosmanager";

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TALOS_MANAGER_PROVIDER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("terraform-provider-talosmanager: error: {error:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("terraform-provider-talosmanager: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let debug = match args.as_slice() {
        [] => false,
        [flag] if flag == "--debug" => true,
        [flag] if flag == "--help" || flag == "-h" => {
            eprintln!(
                "terraform-provider-talosmanager: the Terraform provider for talos-manager.\n\
                 Terraform starts it; run it yourself only with --debug, then export the \
                 TF_REATTACH_PROVIDERS it prints."
            );
            return Ok(());
        }
        _ => bail!("unexpected arguments {args:?} (the only option is --debug)"),
    };
    if !debug {
        check_started_by_terraform()?;
    }

    let directory = tempfile::Builder::new()
        .prefix("terraform-provider-talosmanager-")
        .tempdir()
        .context("failed to create a directory for the plugin socket")?;
    let socket = directory.path().join("plugin.sock");
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("failed to listen on {}", socket.display()))?;

    let client_certificate = std::env::var("PLUGIN_CLIENT_CERT").unwrap_or_default();
    let tls = if debug || client_certificate.trim().is_empty() {
        None
    } else {
        Some(tls::server_tls(&client_certificate).context("failed to set up AutoMTLS")?)
    };

    let shutdown = Arc::new(Notify::new());
    let (connections, incoming) = mpsc::channel::<std::io::Result<Connection>>(16);
    tokio::spawn(accept(
        listener,
        tls.as_ref()
            .map(|tls| tokio_rustls::TlsAcceptor::from(tls.config.clone())),
        connections,
    ));

    if debug {
        print_reattach(&socket)?;
    } else {
        let certificate = tls
            .as_ref()
            .map(|tls| base64::engine::general_purpose::STANDARD_NO_PAD.encode(&tls.certificate))
            .unwrap_or_default();
        let mut stdout = std::io::stdout().lock();
        writeln!(
            stdout,
            "1|{PROTOCOL_VERSION}|unix|{}|grpc|{certificate}",
            socket.display()
        )
        .and_then(|()| stdout.flush())
        .context("failed to write the handshake line")?;
    }

    let stopping = Arc::new(Notify::new());
    let stop = {
        let shutdown = shutdown.clone();
        let stopping = stopping.clone();
        async move {
            tokio::select! {
                () = shutdown.notified() => {}
                () = terminated(debug) => {}
            }
            stopping.notify_one();
        }
    };
    let server = tonic::transport::Server::builder()
        .add_service(ProviderServer::new(ProviderService::new()))
        .add_service(GrpcControllerServer::new(Controller::new(shutdown)))
        .serve_with_incoming_shutdown(Incoming(incoming), stop);
    // Terraform kills a plugin that has not exited 2 s after Shutdown: give open connections
    // one second to finish, then exit anyway.
    let deadline = async {
        stopping.notified().await;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };
    tokio::select! {
        result = server => result.context("the gRPC server failed")?,
        () = deadline => tracing::debug!("connections still open at shutdown; exiting"),
    }
    drop(directory);
    Ok(())
}

/// Refuses to run when not started by Terraform (or a protocol 6 client).
fn check_started_by_terraform() -> anyhow::Result<()> {
    if std::env::var(MAGIC_COOKIE_KEY).as_deref() != Ok(MAGIC_COOKIE_VALUE) {
        bail!(
            "this is a Terraform plugin: Terraform starts it. To use it, add the \
             talosmanager provider to a Terraform configuration (or run it with --debug \
             and export the TF_REATTACH_PROVIDERS it prints)"
        );
    }
    let offered = std::env::var("PLUGIN_PROTOCOL_VERSIONS").unwrap_or_default();
    if !offered
        .split(',')
        .any(|version| version.trim() == PROTOCOL_VERSION)
    {
        bail!(
            "Terraform offered plugin protocol versions {offered:?}; this provider speaks \
             version {PROTOCOL_VERSION} (Terraform 1.0 or later)"
        );
    }
    Ok(())
}

/// Prints the TF_REATTACH_PROVIDERS value for `--debug`.
fn print_reattach(socket: &Path) -> anyhow::Result<()> {
    let address =
        std::env::var("TALOS_MANAGER_PROVIDER_ADDRESS").unwrap_or_else(|_| DEFAULT_ADDRESS.into());
    let reattach = serde_json::json!({
        address: {
            "Protocol": "grpc",
            "ProtocolVersion": 6,
            "Pid": std::process::id(),
            "Test": true,
            "Addr": {"Network": "unix", "String": socket.display().to_string()},
        }
    });
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "Provider started. To attach Terraform, run in another shell:\n\n    \
         export TF_REATTACH_PROVIDERS='{reattach}'\n"
    )
    .and_then(|()| stdout.flush())
    .context("failed to print the reattach configuration")
}

/// Resolves on SIGTERM, or with `stop_on_interrupt` on SIGINT. Without it SIGINT is swallowed
/// (its handler stays installed, so it no longer ends the process).
async fn terminated(stop_on_interrupt: bool) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut sigterm), Ok(mut sigint)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    loop {
        tokio::select! {
            _ = sigterm.recv() => return,
            _ = sigint.recv() => {
                if stop_on_interrupt {
                    return;
                }
                tracing::debug!("SIGINT ignored: Terraform stops the provider");
            }
        }
    }
}

/// Accepts connections, completing TLS in a task per connection so that a slow handshake
/// blocks no other.
async fn accept(
    listener: UnixListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connections: mpsc::Sender<std::io::Result<Connection>>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "failed to accept a connection");
                continue;
            }
        };
        let connections = connections.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let connection = match tls {
                None => Ok(Connection::Plain(stream)),
                Some(acceptor) => acceptor
                    .accept(stream)
                    .await
                    .map(|stream| Connection::Tls(Box::new(stream))),
            };
            if let Err(error) = &connection {
                tracing::warn!(%error, "TLS handshake with Terraform failed");
            }
            let _ = connections.send(connection).await;
        });
    }
}

/// The accepted connections, as tonic wants them.
struct Incoming(mpsc::Receiver<std::io::Result<Connection>>);

impl Stream for Incoming {
    type Item = std::io::Result<Connection>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(context)
    }
}

/// A connection from Terraform: TLS (AutoMTLS) or plaintext (TF_DISABLE_PLUGIN_TLS, --debug).
enum Connection {
    Plain(UnixStream),
    Tls(Box<TlsStream<UnixStream>>),
}

impl Connected for Connection {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_read(context, buffer),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_read(context, buffer),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_write(context, buffer),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_write(context, buffer),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_flush(context),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(context),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_shutdown(context),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(context),
        }
    }
}
