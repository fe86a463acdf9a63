//! The `normiqa` command line: parses arguments and calls `normiqa::cli`.

use clap::Parser;

fn main() {
    let args = normiqa::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("NORMIQA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
    if let Err(e) = normiqa::cli::run(args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
