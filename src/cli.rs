//! The command line: `mhfs mock` (and `mhfs mount`, see issue "The drive").

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::mock::{Faults, MockConfig, MockServer};

#[derive(Parser, Debug)]
#[command(name = "mhfs", version, about = "Magic Hour as a drive")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the mock Magic Hour API as a standalone server.
    Mock(MockArgs),
}

#[derive(Args, Debug)]
pub struct MockArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// Seconds from create to complete (a third queued, the rest rendering); 0 completes at the
    /// first poll.
    #[arg(long, default_value_t = 6.0)]
    pub render_time: f64,
    /// Credit balance; creates that cost more get 402 insufficient_credits.
    #[arg(long, default_value_t = 100_000)]
    pub credits: i64,
    /// Accept only this bearer token (otherwise any non-empty one).
    #[arg(long)]
    pub api_key: Option<String>,
    /// Lifetime of signed download URLs, in seconds.
    #[arg(long, default_value_t = 86_400)]
    pub url_lifetime: u64,
    /// Share (0..1) of API requests answered 500.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share (0..1) of API requests answered 429 with Retry-After.
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Retry-After of the 429 answers, in seconds.
    #[arg(long, default_value_t = 1)]
    pub retry_after: u64,
    /// Milliseconds added before every answer.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share (0..1) of answers whose connection is dropped in the middle of the body.
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Keep uploads and outputs here instead of a temporary folder.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl MockArgs {
    pub fn config(&self) -> MockConfig {
        MockConfig {
            render_time: Duration::from_secs_f64(self.render_time.max(0.0)),
            credits: self.credits,
            api_key: self.api_key.clone(),
            faults: Faults {
                error_rate: self.error_rate,
                throttle_rate: self.throttle_rate,
                retry_after_secs: self.retry_after,
                latency_ms: self.latency_ms,
                drop_rate: self.drop_rate,
                url_lifetime_secs: Some(self.url_lifetime),
                rules: vec![],
            },
            data_dir: self.data_dir.clone(),
        }
    }
}

/// Errors of the command line are one line of text for the user.
pub async fn run_mock(args: MockArgs) -> Result<(), String> {
    let server = MockServer::start(args.listen, args.config())
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    log::info!(
        "mock Magic Hour API on {} (render time {}s); admin: {}/_mock/requests, {}/_mock/faults",
        server.url(),
        args.render_time,
        server.url(),
        server.url()
    );
    println!("{}", server.url());
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    server.stop().await;
    Ok(())
}
