//! redis-cli and redis-benchmark against the node.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{Reply, Server};

const CLI: &str = "/usr/bin/redis-cli";
const BENCH: &str = "/usr/bin/redis-benchmark";

fn need(tool: &str) {
    assert!(
        std::path::Path::new(tool).exists(),
        "{tool} not found: run the test command from the README (it installs redis-tools)"
    );
}

fn cli(s: &Server, args: &[&str]) -> String {
    need(CLI);
    let out = Command::new(CLI)
        .arg("-p")
        .arg(s.port.to_string())
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(out.status.success(), "redis-cli {args:?} failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn redis_cli_one_shot_commands() {
    let s = Server::start(&[]);
    assert_eq!(cli(&s, &["set", "a", "b"]), "OK\n");
    assert_eq!(cli(&s, &["get", "a"]), "b\n");
    assert_eq!(s.conn().run("GET a"), Reply::bulk("b"));
    // The same invocations against redis-server print the same output.
    let redis = Server::start_redis();
    let cases: &[&[&str]] = &[
        &["set", "a", "b"],
        &["get", "a"],
        &["incr", "n"],
        &["get", "missing"],
        &["mget", "a", "missing", "n"],
        &["incr", "a"],
        &["nosuchcommand", "x"],
        &["--no-raw", "get", "a"],
        &["--no-raw", "incr", "n"],
        &["--no-raw", "mget", "a", "missing"],
        &["--no-raw", "incr", "a"],
        &["exists", "a", "n", "zz"],
        &["del", "a"],
    ];
    for case in cases {
        assert_eq!(cli(&s, case), cli(&redis, case), "redis-cli {case:?}");
    }
}

#[test]
fn redis_cli_script_on_stdin() {
    need(CLI);
    let s = Server::start(&[]);
    let mut child = Command::new(CLI)
        .arg("-p")
        .arg(s.port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redis-cli");
    let script =
        "set k1 v1\nset k2 \"two words\"\nget k2\nincr c\nincr c\nmget k1 k2\nexists k1 k2 k3\n";
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write script");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "OK\nOK\ntwo words\n1\n2\nv1\ntwo words\n2\n"
    );
}

#[test]
fn redis_cli_cluster_flag_on_standalone_node() {
    let s = Server::start(&[]);
    assert_eq!(cli(&s, &["-c", "set", "ck", "v"]), "OK\n");
    assert_eq!(cli(&s, &["-c", "get", "ck"]), "v\n");
    assert_eq!(cli(&s, &["-c", "del", "ck"]), "1\n");
}

/// Drives interactive redis-cli through a pseudo terminal (python3 pty).
#[test]
fn redis_cli_interactive_through_a_pty() {
    need(CLI);
    let s = Server::start(&[]);
    // TERM=dumb makes linenoise read plain lines (no cursor queries);
    // the output is still rendered for a terminal.
    let py = r#"
import os, pty, sys, time, select, signal
port = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.execve("/usr/bin/redis-cli", ["redis-cli", "-p", port], dict(os.environ, TERM="dumb"))
out = b""
def drain(t):
    global out
    end = time.time() + t
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                d = os.read(fd, 4096)
            except OSError:
                return
            if not d:
                return
            out += d
def wait_for(s, t=5):
    end = time.time() + t
    while out.count(s) < 1 and time.time() < end:
        drain(0.05)
drain(1.0)
for line in [b"set ik hello", b"get ik", b"incr ic", b"ping"]:
    os.write(fd, line + b"\r")
    drain(0.5)
os.write(fd, b"quit\r")
drain(0.5)
for _ in range(50):
    p, _ = os.waitpid(pid, os.WNOHANG)
    if p:
        break
    time.sleep(0.1)
else:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(py)
        .arg(s.port.to_string())
        .output()
        .expect("python3 with the pty module is needed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("127.0.0.1:{}>", s.port)),
        "no prompt: {text}"
    );
    assert!(text.contains("OK"), "{text}");
    assert!(text.contains("\"hello\""), "{text}");
    assert!(text.contains("(integer) 1"), "{text}");
    assert!(text.contains("PONG"), "{text}");
    assert_eq!(s.conn().run("GET ik"), Reply::bulk("hello"));
}

fn bench(s: &Server, extra: &[&str]) -> String {
    need(BENCH);
    let out = Command::new(BENCH)
        .arg("-p")
        .arg(s.port.to_string())
        .args(["-t", "set,get,incr,mset", "-n", "20000", "-c", "20"])
        .args(extra)
        .output()
        .expect("run redis-benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "benchmark failed: {stdout}\n{stderr}");
    assert!(
        !stdout.to_lowercase().contains("error") && !stderr.to_lowercase().contains("error"),
        "benchmark reported errors: {stdout}\n{stderr}"
    );
    stdout
}

fn parse_quiet(out: &str) -> Vec<(String, f64)> {
    // Lines look like "SET: 12345.68 requests per second, p50=0.391 msec".
    // redis-benchmark rewrites progress lines with '\r'.
    out.split(['\n', '\r'])
        .filter_map(|l| {
            let (name, rest) = l.split_once(": ")?;
            let rps = rest.split_whitespace().next()?.parse::<f64>().ok()?;
            rest.contains("requests per second")
                .then(|| (name.trim().to_string(), rps))
        })
        .collect()
}

#[test]
fn redis_benchmark_quiet_and_pipelined() {
    let s = Server::start(&[]);
    for extra in [&["-q"][..], &["-q", "-P", "16"][..]] {
        let out = bench(&s, extra);
        let results = parse_quiet(&out);
        let names: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
        for want in ["SET", "GET", "INCR"] {
            assert!(names.contains(&want), "{want} missing in {out}");
        }
        assert!(
            names.iter().any(|n| n.starts_with("MSET")),
            "MSET missing in {out}"
        );
        assert!(results.iter().all(|(_, rps)| *rps > 0.0), "{out}");
    }
    // The counter INCR'd by the benchmark reached the request count.
    let mut c = s.conn();
    let counter = c.run("GET counter:__rand_int__");
    assert!(matches!(counter, Reply::Bulk(_)), "{counter:?}");
}

#[test]
fn redis_benchmark_csv_is_parseable() {
    let s = Server::start(&[]);
    let out = bench(&s, &["--csv"]);
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().expect("csv header");
    assert!(header.starts_with("\"test\",\"rps\""), "{header}");
    let cols = header.split(',').count();
    let mut tests = Vec::new();
    for l in lines {
        let fields: Vec<&str> = l.split(',').map(|f| f.trim_matches('"')).collect();
        assert_eq!(fields.len(), cols, "{l}");
        let rps: f64 = fields[1].parse().unwrap_or_else(|_| panic!("rps in {l}"));
        assert!(rps > 0.0);
        for f in &fields[2..] {
            f.parse::<f64>().unwrap_or_else(|_| panic!("number in {l}"));
        }
        tests.push(fields[0].to_string());
    }
    assert!(tests.iter().any(|t| t == "SET"), "{out}");
    assert!(tests.iter().any(|t| t == "GET"), "{out}");
    assert!(tests.iter().any(|t| t.starts_with("MSET")), "{out}");
}
