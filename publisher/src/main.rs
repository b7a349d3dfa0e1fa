//! `publisher`: parse arguments, load settings, bind, and hand over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use publisher::config::{Overrides, Settings};

/// Samples this machine every 15 s, keeps a durable ring of snapshots, serves them over HTTP
/// (:9000 on loopback by default) and records batch jobs.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// TOML config file (see configs/publisher.toml). Environment variables
    /// PUBLISHER_<SECTION>__<KEY> override it; flags override both.
    #[arg(short, long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Host id in snapshots and topics ([A-Za-z0-9_-]+; default: the host name).
    #[arg(long, global = true)]
    host: Option<String>,
    /// Directory for the ring and the event log.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Sampling interval, e.g. 15s or 500ms.
    #[arg(long, value_name = "DURATION")]
    interval: Option<String>,
    /// HTTP listen address, e.g. 127.0.0.1:9000 (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// Where procfs is mounted (for testing against a fixture tree).
    #[arg(long, value_name = "DIR")]
    proc_root: Option<PathBuf>,
    /// Where sysfs is mounted.
    #[arg(long, value_name = "DIR")]
    sys_root: Option<PathBuf>,
    /// MQTT: embedded (run rumqttd here), external (publish to [broker] host:port) or off.
    #[arg(long, value_name = "MODE")]
    broker_mode: Option<String>,
    /// Embedded broker's listen address, e.g. 127.0.0.1:1883 (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    broker_listen: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run,
    /// Run CMD, pass its exit code through, and record job_start/job_end events.
    Job {
        /// Job name in events (default: the command's file name).
        #[arg(long)]
        name: Option<String>,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Validate the configuration and print the effective settings.
    CheckConfig,
}

fn main() -> ExitCode {
    daemon_kit::daemon::one_malloc_arena();
    let cli = Cli::parse();
    daemon_kit::daemon::init_logging();
    let overrides = Overrides {
        host: cli.host.clone(),
        data_dir: cli.data_dir.clone(),
        interval: cli.interval.clone(),
        http_bind: cli.bind.clone(),
        proc_root: cli.proc_root.clone(),
        sys_root: cli.sys_root.clone(),
        broker_mode: cli.broker_mode.clone(),
        broker_listen: cli.broker_listen.clone(),
    };
    let settings = match Settings::load(cli.config.as_deref(), &overrides) {
        Ok(s) => s,
        Err(error) => {
            eprintln!("publisher: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match daemon_kit::daemon::idle_runtime() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("publisher: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => match runtime.block_on(serve(settings)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("publisher: {}", daemon_kit::daemon::report(&*error));
                ExitCode::FAILURE
            }
        },
        Command::Job { name, command } => {
            let code = runtime.block_on(publisher::job::run_job(&settings, name, command));
            ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
        }
        Command::CheckConfig => {
            print!("{}", settings.to_toml());
            ExitCode::SUCCESS
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.http.bind)
        .await
        .with_context(|| format!("cannot listen on {} (http.bind)", settings.http.bind))?;
    publisher::run(settings, listener, daemon_kit::daemon::shutdown_token()).await
}
