use clap::Parser;

use mhfs::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let level = match &cli.command {
        Command::Mount(m) if m.debug => "debug",
        _ => "info",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Mount(args) => mhfs::cli::run_mount(args).await,
            Command::Mock(args) => mhfs::cli::run_mock(args).await,
            Command::Jobs(args) => mhfs::cli::run_jobs(args),
            Command::Tools => {
                print!("{}", mhfs::fs::readme::tools_markdown());
                Ok(())
            }
        }
    });
    if let Err(e) = result {
        log::error!("{e}");
        std::process::exit(1);
    }
}
