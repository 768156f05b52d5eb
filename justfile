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

# Run a local Finfra sandbox (prints the credentials to use).
sandbox *ARGS:
    cargo run -p worker -- sandbox {{ARGS}}

# Check the configuration and the way to Finfra.
doctor:
    cargo run -p worker -- doctor

# Build the release binary (target/release/finflow).
build:
    cargo build --release -p worker
