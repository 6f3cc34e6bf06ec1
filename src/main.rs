#![deny(clippy::undocumented_unsafe_blocks)]

use clap::Parser;

use mhfs::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let mut logger = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(
        match &cli.command {
            Command::Mount(m) if m.debug => "debug",
            _ => "info",
        },
    ));
    if let Command::Mount(m) = &cli.command {
        // Everything mhfs makes in the state directory (database, staged inputs, outputs, the
        // mock's data, the log) is its own: 0700 folders and 0600 files, whatever the umask.
        // SAFETY: umask cannot fail and touches no memory; no other thread exists yet.
        unsafe { libc::umask(0o077) };
        if m.daemon {
            // Forks before any thread or runtime exists: the child runs in the foreground.
            logger.init();
            if let Err(e) = mhfs::cli::daemonize(m) {
                log::error!("{e}");
                std::process::exit(1);
            }
            return;
        }
        // A `--daemon` child: take the pipe it reports on before any thread exists.
        mhfs::cli::take_ready_pipe();
        if let Some(path) = &m.log_file {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(f) => {
                    logger.target(env_logger::Target::Pipe(Box::new(f)));
                }
                Err(e) => {
                    let e = format!("cannot open the log file {}: {e}", path.display());
                    mhfs::cli::report_ready(Err(&e));
                    eprintln!("mhfs: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
    logger.init();
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
