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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
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
    }
}
