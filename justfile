# finflow's everyday recipes. `just --list` shows them.

# Run the whole test suite (what CI runs, after fmt and clippy).
test:
    cargo test --workspace

# Format check and clippy with warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Format the code.
fmt:
    cargo fmt --all

# Everything CI does, on this machine.
ci:
    bash .ci/run

# Borrowers onboarded and loans signed, disbursed and repaid against an in-process Finfra
# with faults, in ./finflow-demo.db (recreated). E.g. `just demo --journeys 200 --seed 7`.
demo *ARGS:
    cargo run --release -p worker -- demo {{ARGS}}

# Run a local Finfra sandbox (prints the credentials to use).
sandbox *ARGS:
    cargo run -p worker -- sandbox {{ARGS}}

# Check the configuration and the way to Finfra.
doctor:
    cargo run -p worker -- doctor

# Onboardings per second, step-to-step latency and idle pickup on SQLite and PostgreSQL
# (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres; skipped if it does not
# answer), against an in-process zero-delay sandbox. E.g. `just bench --onboardings 1000 --json`.
bench *ARGS:
    cargo run --release -p worker -- bench {{ARGS}}

# Build the release binary (target/release/finflow).
build:
    cargo build --release -p worker
