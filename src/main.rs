use clap::Parser;

use mhfs::cli::{Cli, Command};

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Mock(args) => mhfs::cli::run_mock(args).await,
        }
    });
    if let Err(e) = result {
        log::error!("{e}");
        std::process::exit(1);
    }
}
