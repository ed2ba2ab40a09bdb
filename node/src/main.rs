//! `shardline-node [path/to/redis.conf] [--directive value ...]`

use std::process::ExitCode;
use std::sync::Arc;

use shardline_node::config::{self, CliAction};
use shardline_node::node::Node;
use shardline_node::server;

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn init_logging(
    level: &str,
    file: &str,
) -> Result<Option<tracing_appender::non_blocking::WorkerGuard>, String> {
    let filter = match level {
        "debug" => "debug",
        "verbose" => "info",
        "notice" => "info",
        "warning" => "warn",
        "nothing" => "off",
        _ => "info",
    };
    let env = tracing_subscriber::EnvFilter::try_from_env("SHARDLINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    if file.is_empty() {
        tracing_subscriber::fmt()
            .with_env_filter(env)
            .with_writer(std::io::stderr)
            .init();
        Ok(None)
    } else {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .map_err(|e| format!("Can't open the log file: {e}"))?;
        let (w, guard) = tracing_appender::non_blocking(f);
        tracing_subscriber::fmt()
            .with_env_filter(env)
            .with_ansi(false)
            .with_writer(w)
            .init();
        Ok(Some(guard))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let loaded = match config::parse_cli(&args) {
        Ok(CliAction::Run(l)) => l,
        Ok(CliAction::Help) => {
            eprint!("{}", config::help_text());
            return ExitCode::SUCCESS;
        }
        Ok(CliAction::Version) => {
            eprintln!("{}", config::version_text());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = loaded.config;
    let _guard = match init_logging(cfg.loglevel.as_str(), &cfg.logfile) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if !cfg.dir.is_empty() {
        if let Err(e) = std::env::set_current_dir(&cfg.dir) {
            tracing::error!("Can't chdir to '{}': {e}", cfg.dir);
            return ExitCode::FAILURE;
        }
    }
    let pidfile = cfg.pidfile.clone();
    let threads = cfg.effective_worker_threads();
    shardline_node::clock::init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("could not start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let node = Node::new(cfg, loaded.path);
    let code = rt.block_on(run(node.clone(), &pidfile));
    if !pidfile.is_empty() {
        let _ = std::fs::remove_file(&pidfile);
    }
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}

async fn run(node: Arc<Node>, pidfile: &str) -> ExitCode {
    let listeners = match server::bind(&node).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(a) = listeners.first().and_then(|l| l.local_addr().ok()) {
        node.port
            .store(u32::from(a.port()), std::sync::atomic::Ordering::Relaxed);
    }
    if node.config.read().cluster_enabled {
        let port = node.port.load(std::sync::atomic::Ordering::Relaxed) as u16;
        let opened = shardline_node::cluster::Cluster::open(&node.config.read(), port);
        let cluster = match opened {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = cluster.start(&node).await {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
        let _ = node.cluster.set(cluster);
    }
    if !pidfile.is_empty() {
        if let Err(e) = std::fs::write(pidfile, format!("{}\n", std::process::id())) {
            tracing::warn!("could not write pidfile {pidfile}: {e}");
        }
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        port = node.port.load(std::sync::atomic::Ordering::Relaxed),
        shards = node.keyspace.nshards(),
        "Ready to accept connections"
    );
    shardline_node::replication::apply_config(&node);
    let replicaof = node.config.read().replicaof.clone();
    if let Some(r) = replicaof {
        if node.cluster.get().is_some() {
            tracing::warn!("replicaof is ignored in cluster mode (use CLUSTER REPLICATE)");
        } else {
            shardline_node::replication::set_master(&node, Some((r.host.clone(), r.port)));
        }
    }
    for l in listeners {
        tokio::spawn(server::accept_loop(node.clone(), l));
    }
    tokio::spawn(server::cron(node.clone()));
    {
        let n = node.clone();
        tokio::spawn(async move { n.hot.busy_poll.run().await });
    }
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Signals start the graceful shutdown (shutdown-on-sigterm /
    // shutdown-on-sigint); the process ends when a shutdown completes.
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::warn!("Received SIGTERM scheduling shutdown...");
                if !node.shutdown_ctl.in_progress() {
                    let flags = node.config.read().shutdown_on_sigterm;
                    tokio::spawn(shardline_node::shutdown::run(node.clone(), flags));
                }
            }
            _ = int.recv() => {
                if node.shutdown_ctl.in_progress() {
                    tracing::warn!("You insist... exiting now.");
                    return ExitCode::FAILURE;
                }
                tracing::warn!("Received SIGINT scheduling shutdown...");
                let flags = node.config.read().shutdown_on_sigint;
                tokio::spawn(shardline_node::shutdown::run(node.clone(), flags));
            }
            _ = node.shutdown.notified() => {
                if node.shutting_down.load(std::sync::atomic::Ordering::Acquire) {
                    break;
                }
            }
        }
    }
    node.shutdown.notify_waiters();
    ExitCode::SUCCESS
}
