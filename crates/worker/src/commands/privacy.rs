//! `finflow privacy`: personal data at rest (`store`'s `personal` module): seal what is
//! still plain, rewrap data keys under the active key, purge finished workflows, erase one
//! borrower.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{NaiveDate, TimeZone as _, Utc};
use worker::config::Config;

pub const PRIVACY_HELP: &str = "Examples:\n  \
    finflow privacy new-key                            # a fresh key to configure\n  \
    finflow privacy seal                               # seal inputs and callbacks still plain\n  \
    finflow privacy rotate                             # rewrap data keys under [privacy] active\n  \
    finflow privacy purge --finished-before 2021-12-01 # erase the personal data of older workflows\n  \
    finflow privacy erase --business-key budi-1        # one borrower, on request\n\n\
    [privacy] in finflow.toml holds the keys: keys = { \"2026-12\" = \"<base64 of 32 bytes>\" },\n\
    active = \"2026-12\", hash_key = \"<base64 of 32 bytes>\" (or FINFLOW_PRIVACY__* variables).\n\
    Erasure destroys a workflow's data key and clears its input, hashes and callbacks; its\n\
    money record (journal, facts, events, commands) stays. A borrower with an open loan is\n\
    not erased.";

/// Rows per batch: each row commits alone, so a stopped run resumes where it was.
const BATCH: i64 = 500;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Print a fresh random key (base64 of 32 bytes) for `privacy.keys` or
    /// `privacy.hash_key`; nothing is stored.
    NewKey,
    /// Seal the inputs and callback payloads still stored plain (written before keys were
    /// configured, or submitted through SQL), in batches, with progress; safe while the
    /// fleet runs, resumable.
    Seal,
    /// Rewrap every data key not under the active key (after adding a new key and making
    /// it active); the data itself is not rewritten.
    Rotate,
    /// Erase the personal data of every workflow finished before a day.
    Purge {
        /// YYYY-MM-DD (midnight UTC).
        #[arg(long)]
        finished_before: NaiveDate,
    },
    /// Erase one borrower's personal data: their onboarding and their loans, all finished.
    Erase {
        /// The onboarding's business key.
        #[arg(long)]
        business_key: String,
    },
}

/// # Errors
/// The configuration, the keys or the database failed; a refused erasure.
pub async fn run(config: Option<&Path>, args: Args) -> anyhow::Result<ExitCode> {
    // Every command but `new-key` needs the keys and the database.
    let store = async {
        let config = Config::load(config)?;
        super::open_store_for_writes(&config, false).await
    };
    match args.what {
        What::NewKey => {
            use secrecy::ExposeSecret as _;
            println!("{}", privacy::KeyRing::new_key_base64().expose_secret());
        }
        What::Seal => {
            let store = store.await?;
            loop {
                let progress = store.seal_plain(BATCH).await.context("sealing failed")?;
                eprintln!(
                    "finflow privacy seal: {} sealed, {} still plain",
                    progress.sealed, progress.left
                );
                if progress.left == 0 || progress.sealed == 0 {
                    break;
                }
            }
        }
        What::Rotate => {
            let store = store.await?;
            let mut total = 0;
            loop {
                let done = store.rotate_keys(BATCH).await.context("rotating failed")?;
                total += done;
                if done == 0 {
                    break;
                }
                eprintln!("finflow privacy rotate: {total} data keys rewrapped so far");
            }
            println!("{total} data keys rewrapped under the active key");
        }
        What::Purge { finished_before } => {
            let before = Utc.from_utc_datetime(&finished_before.and_time(chrono::NaiveTime::MIN));
            let store = store.await?;
            let erased = store.purge(before).await.context("purging failed")?;
            println!("the personal data of {erased} finished workflows was erased");
        }
        What::Erase { business_key } => match store.await?.erase(&business_key).await {
            Ok(erasure) => {
                println!(
                    "the personal data of {} workflows of borrower {business_key:?} was erased:",
                    erasure.workflows.len()
                );
                for id in erasure.workflows {
                    println!("  {id}");
                }
            }
            Err(store::StoreError::Refused(why)) => {
                eprintln!("finflow privacy erase: refused: {why}");
                return Ok(ExitCode::FAILURE);
            }
            Err(other) => return Err(other).context("erasing failed"),
        },
    }
    Ok(ExitCode::SUCCESS)
}
