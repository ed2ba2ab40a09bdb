use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Kubernetes operator for Shardline Redis Clusters.
#[derive(Parser)]
#[command(name = "shardline-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the RedisCluster CustomResourceDefinition as YAML.
    Crd,
    /// Run a Redis Cluster on this machine: start members as local
    /// processes on 127.0.0.x, build the cluster, and keep it healthy and
    /// in line with the spec until Ctrl-C.
    Up(shardline_operator::up::UpArgs),
}

fn crd() -> ExitCode {
    let yaml = match shardline_operator::crd_yaml() {
        Ok(yaml) => yaml,
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "cannot serialize the CRD: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(yaml.as_bytes()).and_then(|()| out.flush()) {
        let _ = writeln!(std::io::stderr().lock(), "cannot write the CRD: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => crd(),
        Command::Up(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("SHARDLINE_LOG")
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(shardline_operator::up::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
