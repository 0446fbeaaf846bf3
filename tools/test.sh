#!/usr/bin/env bash
# The whole test suite, as CI runs it: prerequisites, formatting, lints
# (which also type-check the benches), then every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh
cargo fmt --all --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked
