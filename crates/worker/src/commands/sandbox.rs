//! `finflow sandbox`: runs `finfra-sandbox` standalone until Ctrl-C or SIGTERM.
//!
//! It prints what a developer needs to point finflow (or any Finfra client) at it: the base
//! URL, the credentials, the ledger and the simulation controls.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use finfra_sandbox::{
    CallbackTarget, ClientCredentials, Faults, RateLimit, Sandbox, SandboxConfig, Timing,
};
use url::Url;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0 picks a free one; the chosen port is printed).
    #[arg(long, default_value_t = 8090)]
    port: u16,
    /// The base URL clients reach the sandbox at, advertised in presigned upload URLs
    /// (default: http://<host>:<port>, 127.0.0.1 for 0.0.0.0), e.g. http://sandbox:8090 in a
    /// container network.
    #[arg(long, value_name = "URL")]
    public_url: Option<Url>,
    /// Client id to accept (default: a random one, printed at start).
    #[arg(long, requires = "client_secret")]
    client_id: Option<String>,
    /// Client secret to accept (default: a random one, printed at start).
    #[arg(long, requires = "client_id")]
    client_secret: Option<String>,
    /// Partner base URL that receives Finfra's callbacks (e.g. a `finflow run` receiver).
    #[arg(long, requires = "callback_auth_key")]
    callback_url: Option<Url>,
    /// The `finfra-auth-key` sent with every callback.
    #[arg(long, requires = "callback_url")]
    callback_auth_key: Option<String>,
    /// Advance every lifecycle at once (borrowers verify and loans sign and disburse with no delay).
    #[arg(long)]
    zero_delay: bool,
    /// Loans are signed, disbursements settled and loans repaid only through the control
    /// endpoints.
    #[arg(long, conflicts_with = "auto_repay_ms")]
    manual: bool,
    /// The simulated borrower pays one installment every this many milliseconds, once a loan
    /// is disbursed and has a virtual account (default 1000, 0 with --zero-delay); `off`:
    /// repayments only through the control endpoint.
    #[arg(long, value_name = "MS|off", value_parser = auto_repay)]
    auto_repay_ms: Option<AutoRepay>,
    /// Requests per second allowed per client (token bucket); 0 turns the limit off.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Burst size of the rate limit.
    #[arg(long, default_value_t = 40)]
    burst: u32,
    /// Access token lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    token_ttl: u64,
    /// Seed of every random choice (faults, callback duplicates and reordering).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Share of API requests answered with 500.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    error_500_rate: f64,
    /// Share of API requests answered with 429 and a Retry-After header.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    error_429_rate: f64,
    /// Share of API requests that are applied, then lose their connection without an answer.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    ambiguous_rate: f64,
    /// Share of callbacks delivered twice.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    duplicate_callback_rate: f64,
    /// Share of loans whose callbacks are never delivered (as if the receiver was down
    /// longer than Finfra retries): only polls and `finflow reconcile` find out.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    drop_loan_callbacks_rate: f64,
}

/// `--auto-repay-ms`: an interval, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AutoRepay(Option<Duration>);

fn auto_repay(raw: &str) -> Result<AutoRepay, String> {
    if raw == "off" {
        return Ok(AutoRepay(None));
    }
    raw.parse::<u64>()
        .map(|ms| AutoRepay(Some(Duration::from_millis(ms))))
        .map_err(|_| format!("{raw:?} is neither a number of milliseconds nor \"off\""))
}

fn rate(raw: &str) -> Result<f64, String> {
    let value: f64 = raw
        .parse()
        .map_err(|_| format!("{raw:?} is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{value} is not between 0 and 1"))
    }
}

/// Starts the sandbox, prints how to use it and serves until a shutdown signal.
///
/// # Errors
/// The address cannot be bound.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = config_from(&args);
    let listen = config.listen;
    let sandbox = Sandbox::start(config)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    // Before the banner: whoever reads it may signal at once.
    let shutdown = super::shutdown_signal();
    print_banner(&sandbox);
    shutdown.await;
    eprintln!("finfra sandbox: shutting down");
    sandbox.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

fn config_from(args: &Args) -> SandboxConfig {
    let mut config = SandboxConfig::standalone();
    if args.zero_delay {
        config.timing = Timing {
            auto_sign: config.timing.auto_sign.map(|_| Duration::ZERO),
            auto_disburse: config.timing.auto_disburse.map(|_| Duration::ZERO),
            auto_repay: config.timing.auto_repay.map(|_| Duration::ZERO),
            ..Timing::zero()
        };
    }
    if let Some(AutoRepay(every)) = args.auto_repay_ms {
        config.timing.auto_repay = every;
    }
    if args.manual {
        config.timing.auto_sign = None;
        config.timing.auto_disburse = None;
        config.timing.auto_repay = None;
    }
    config.listen = SocketAddr::new(args.host, args.port);
    config.public_url.clone_from(&args.public_url);
    if let (Some(client_id), Some(client_secret)) = (&args.client_id, &args.client_secret) {
        config.clients = vec![ClientCredentials {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
        }];
    }
    if let (Some(base_url), Some(auth_key)) = (&args.callback_url, &args.callback_auth_key) {
        config.callback = Some(CallbackTarget {
            base_url: base_url.clone(),
            auth_key: auth_key.clone(),
        });
    }
    config.rate_limit = (args.rate > 0.0).then_some(RateLimit {
        per_second: args.rate,
        burst: args.burst.max(1),
    });
    config.token_ttl = Duration::from_secs(args.token_ttl.max(1));
    config.faults = Faults {
        seed: args.seed,
        error_500_rate: args.error_500_rate,
        error_429_rate: args.error_429_rate,
        ambiguous_rate: args.ambiguous_rate,
        ..Faults::default()
    };
    config.delivery.seed = args.seed;
    config.delivery.duplicate_rate = args.duplicate_callback_rate;
    config.delivery.drop_loan_callbacks_rate = args.drop_loan_callbacks_rate;
    config
}

fn print_banner(sandbox: &finfra_sandbox::RunningSandbox) {
    let base = sandbox.base_url();
    let base = base.as_str().trim_end_matches('/');
    println!("finfra sandbox listening on {base}");
    println!("  client id      {}", sandbox.client_id());
    println!("  client secret  {}", sandbox.client_secret());
    println!("  healthcheck    {base}/healthcheck/productionness");
    println!("  ledger         {base}/_sandbox/ledger");
    println!(
        "  controls       {base}/_sandbox/  (sign loans, settle disbursements, pay virtual accounts)"
    );
    let timing = sandbox.config().timing;
    let auto = |what: &str, when: &str, d: Option<Duration>| {
        d.map_or_else(
            || format!("{what} by control call"),
            |d| format!("{what} {when} {} ms", d.as_millis()),
        )
    };
    println!(
        "  auto           {}, {}, {}",
        auto("sign", "after", timing.auto_sign),
        auto("disburse", "after", timing.auto_disburse),
        auto("repay an installment", "every", timing.auto_repay),
    );
    println!();
    println!("Point finflow at it:");
    println!("  export FINFLOW_FINFRA__BASE_URL={base}");
    println!("  export FINFLOW_FINFRA__CLIENT_ID={}", sandbox.client_id());
    println!(
        "  export FINFLOW_FINFRA__CLIENT_SECRET={}",
        sandbox.client_secret()
    );
    println!("  finflow doctor");
    println!();
    println!("Ctrl-C stops it.");
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn auto_repay_of(flags: &[&str]) -> Option<Duration> {
        let cli = Cli::try_parse_from(std::iter::once("sandbox").chain(flags.iter().copied()))
            .expect("flags parse");
        config_from(&cli.args).timing.auto_repay
    }

    #[test]
    fn auto_repay_flags() {
        assert_eq!(auto_repay_of(&[]), Some(Duration::from_secs(1)));
        assert_eq!(auto_repay_of(&["--zero-delay"]), Some(Duration::ZERO));
        assert_eq!(
            auto_repay_of(&["--zero-delay", "--auto-repay-ms", "250"]),
            Some(Duration::from_millis(250))
        );
        assert_eq!(auto_repay_of(&["--auto-repay-ms", "off"]), None);
        assert_eq!(auto_repay_of(&["--manual"]), None);
        assert!(Cli::try_parse_from(["sandbox", "--auto-repay-ms", "soon"]).is_err());
        assert!(
            Cli::try_parse_from(["sandbox", "--manual", "--auto-repay-ms", "5"]).is_err(),
            "--manual and --auto-repay-ms contradict each other"
        );
    }
}
