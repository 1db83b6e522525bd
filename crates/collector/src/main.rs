//! The `collector` binary: load config, set up JSON logs, run until SIGTERM or SIGINT.

use anyhow::Context;
use collector::config::{Config, ConfigError};
use tokio::signal::unix::{signal, SignalKind};

fn main() -> std::process::ExitCode {
    // `collector get URL`: the image has no shell or curl, so this is how a pod running it
    // reaches another Service by name (kubectl exec ... -- /collector get http://hello/events).
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("get") {
        return collector::client::main(&args[1..]);
    }
    let config = match Config::from_process() {
        Ok(c) => c,
        Err(ConfigError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("collector: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new(&config.log_level))
        .with_writer(std::io::stderr)
        .init();
    match run(config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "collector failed");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting runtime")?;
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        collector::server::run(config, shutdown)
            .await
            .context("collector")
    })
}
