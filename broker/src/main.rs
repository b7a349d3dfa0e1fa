//! `broker`: the publisher's embedded MQTT broker, standalone. Reads the `[broker]` table of the
//! same config file as the publisher (and `PUBLISHER_BROKER__*` environment variables), runs
//! until SIGINT/SIGTERM, then exits (rumqttd has no stop: the process ending is the stop).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use broker::BrokerSettings;
use clap::Parser;

/// Standalone MQTT 3.1.1 broker (rumqttd) with the publisher's bounded-memory settings.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// TOML config file; only its [broker] table is read (see configs/publisher.toml).
    #[arg(short, long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Listen address, e.g. 127.0.0.1:1883 (overrides broker.listen).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Validate the settings, print them, and exit.
    #[arg(long)]
    check_config: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Defaults {
    broker: BrokerSettings,
}

fn load(cli: &Cli) -> anyhow::Result<BrokerSettings> {
    let builder = daemon_kit::settings::layered_config(
        &Defaults {
            broker: BrokerSettings::default(),
        },
        cli.config.as_deref(),
        "PUBLISHER",
        &[],
    )?
    .set_override_option("broker.listen", cli.listen.clone())?;
    let settings: BrokerSettings = builder
        .build()?
        .get("broker")
        .context("configuration table [broker]")?;
    // This binary always runs the broker, whatever `mode` the shared file says, so the
    // embedded broker's rules (no anonymous open listener) always apply.
    let settings = BrokerSettings {
        mode: broker::BrokerMode::Embedded,
        ..settings
    };
    settings.validate()?;
    Ok(settings)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    daemon_kit::daemon::init_logging();
    let settings = match load(&cli) {
        Ok(s) => s,
        Err(error) => {
            eprintln!("broker: {}", daemon_kit::daemon::report(&*error));
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        match serde_json::to_string_pretty(&settings.redacted()) {
            Ok(text) => println!("{text}"),
            Err(error) => eprintln!("broker: {error}"),
        }
        return ExitCode::SUCCESS;
    }
    if let Err(error) = serve(&settings) {
        eprintln!("broker: {}", daemon_kit::daemon::report(&*error));
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn serve(settings: &BrokerSettings) -> anyhow::Result<()> {
    let running = broker::embedded::spawn(settings)?;
    tracing::info!(
        mqtt = %running.addr,
        logins = settings.logins().map_or(0, |l| l.len()),
        retained_topics = ?settings.retained_filters(),
        protected_topics = ?settings.protected_filters(),
        max_retained = settings.max_retained,
        max_retained_payload = settings.max_retained_payload,
        "broker running; stop with SIGTERM or Ctrl-C"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stopped = runtime.block_on(async {
        // What the retained-store guard cleared, when it changed, at most every 10 s.
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
        let mut logged = broker::retain::RetainStats::default();
        loop {
            tokio::select! {
                () = daemon_kit::daemon::shutdown_signal() => return None,
                reason = running.wait_stopped() => return Some(reason),
                _ = tick.tick() => {}
            }
            let now = running.retained();
            if now != logged {
                log_retained(&now);
                logged = now;
            }
        }
    });
    log_retained(&running.retained());
    if let Some(reason) = stopped {
        anyhow::bail!("the broker stopped ({reason}); exiting so the service manager restarts it");
    }
    tracing::info!("broker stopping");
    Ok(())
}

fn log_retained(s: &broker::retain::RetainStats) {
    tracing::info!(
        retained_topics = s.retained_topics,
        retained_bytes = s.retained_bytes,
        cleared_outside_topics = s.cleared_outside_topics,
        cleared_too_large = s.cleared_too_large,
        cleared_over_count = s.cleared_over_count,
        cleared_to_make_room = s.cleared_to_make_room,
        cleared_protected_over_count = s.cleared_protected_over_count,
        sweeps = s.sweeps,
        "retained store"
    );
}
