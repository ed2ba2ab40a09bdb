#!/usr/bin/env bash
# Runs every test of the project. Installs what the tests need first, so a
# fresh Debian machine (with the Rust toolchain) needs nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "==> installing test dependencies (redis-server, redis-tools, python3-redis)"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools python3-redis >/dev/null
redis-server --version
/usr/bin/python3 -c "import redis; print('python3-redis', redis.__version__)"

echo "==> formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "==> tests"
cargo test --workspace -- --test-threads="${TEST_THREADS:-4}"
