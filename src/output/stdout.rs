//! Results printed on standard output, through [`crate::out!`] and [`crate::outln!`] instead of
//! `print!`/`println!`: those panic when the reader has gone (`normiqa test ... | head -1`),
//! while these return the error, which `main` recognises ([`crate::cli::is_broken_pipe`]) and
//! ends quietly with exit status 0. Other write errors (a full disk) name standard output.

use std::io::Write;

use anyhow::{Context, Result};

/// Writes `args` to standard output.
pub fn write(args: std::fmt::Arguments<'_>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.flush())
        .context("writing to standard output")
}

/// `print!` returning the write error ([`write`]) instead of panicking.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::stdout::write(format_args!($($arg)*))
    };
}

/// `println!` returning the write error ([`write`]) instead of panicking.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::stdout::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::stdout::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}
