#!/usr/bin/env bash
# The whole test suite, as CI runs it: prerequisites, formatting, lints
# (which also type-check the benches), then every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh
cargo fmt --all --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked
# Every bench compiles (the issue-#5 benches run by hand, see BENCHMARKS.md).
# --bench '*': only the bench targets, not a bench-harness copy of every
# lib and bin in the workspace (each one more linked binary on CI's disk;
# --benches would still build those).
# The dev profile, so that CI does not build RocksDB a second time in release.
cargo bench --locked --workspace --bench '*' --no-run --profile dev
