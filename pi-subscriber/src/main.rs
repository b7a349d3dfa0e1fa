//! `pi-subscriber`: parse arguments, load settings, bind, and hand over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pi_subscriber::config::{Overrides, Settings};

/// Consumes server snapshots (MQTT, with HTTP polling as fallback and for backfill), computes
/// rates, keeps per-host history and serves /metrics, /history, /health on :9100.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// TOML config file (see configs/pi-subscriber.toml). Environment variables
    /// PI_SUBSCRIBER_<SECTION>__<KEY> override it; flags override both.
    #[arg(short, long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// HTTP listen address (an IP, or IP:PORT).
    #[arg(long, global = true, value_name = "ADDR")]
    bind: Option<String>,
    /// HTTP listen port.
    #[arg(long, global = true)]
    port: Option<u16>,
    /// The publisher's /latest URL, polled when MQTT is silent (seed flag).
    #[arg(long, global = true, value_name = "URL")]
    metrics_endpoint: Option<String>,
    /// Seconds (or a duration like 15s) between polls.
    #[arg(long, global = true, value_name = "DURATION")]
    poll_interval: Option<String>,
    /// HTTP request timeout, seconds or a duration.
    #[arg(long, global = true, value_name = "DURATION")]
    timeout: Option<String>,
    /// Stale after this long without new data, seconds or a duration.
    #[arg(long, global = true, value_name = "DURATION")]
    max_age: Option<String>,
    /// Directory for the persisted history.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// MQTT broker host.
    #[arg(long, global = true)]
    mqtt_host: Option<String>,
    /// MQTT broker port.
    #[arg(long, global = true)]
    mqtt_port: Option<u16>,
    /// HTTP polling only.
    #[arg(long, global = true)]
    no_mqtt: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run,
    /// Validate the configuration and print the effective settings.
    CheckConfig,
}

fn main() -> ExitCode {
    daemon_kit::daemon::one_malloc_arena();
    let cli = Cli::parse();
    daemon_kit::daemon::init_logging();
    let overrides = Overrides {
        bind: cli.bind.clone(),
        port: cli.port,
        metrics_endpoint: cli.metrics_endpoint.clone(),
        poll_interval: cli.poll_interval.clone(),
        timeout: cli.timeout.clone(),
        max_age: cli.max_age.clone(),
        data_dir: cli.data_dir.clone(),
        mqtt_host: cli.mqtt_host.clone(),
        mqtt_port: cli.mqtt_port,
        no_mqtt: cli.no_mqtt,
    };
    let settings = match Settings::load(cli.config.as_deref(), &overrides) {
        Ok(s) => s,
        Err(error) => {
            eprintln!("pi-subscriber: {error}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::CheckConfig) = cli.command {
        print!("{}", settings.to_toml());
        return ExitCode::SUCCESS;
    }
    let runtime = match daemon_kit::daemon::runtime() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("pi-subscriber: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pi-subscriber: {}", daemon_kit::daemon::report(&*error));
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.http.bind)
        .await
        .with_context(|| format!("cannot listen on {} (http.bind)", settings.http.bind))?;
    pi_subscriber::run(settings, listener, daemon_kit::daemon::shutdown_token()).await
}
