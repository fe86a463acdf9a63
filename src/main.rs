//! The `normiqa` command line: parses arguments and calls `normiqa::cli`.

use std::io::IsTerminal;

use clap::Parser;

fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(msg) = normiqa::cli::reference_spelling::check(&argv) {
        eprintln!("error: {msg}");
        std::process::exit(2);
    }
    let args = normiqa::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("NORMIQA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let color = normiqa::cli::use_color(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_target(false)
        .without_time()
        .init();
    if let Err(e) = normiqa::cli::run(args) {
        // The reader of our output went away (`normiqa predict photos | head -1`): not an error.
        if normiqa::cli::is_broken_pipe(&e) {
            std::process::exit(0);
        }
        eprintln!("error: {}", normiqa::cli::error_text(&e));
        std::process::exit(1);
    }
}
