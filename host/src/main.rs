//! `emoedge`: thin entry point. Parses arguments, runs one subcommand, prints an error once
//! with its causes, and maps the outcome to the exit status.

mod cmd;

use clap::Parser;
use cmd::{Cli, Outcome};

fn main() -> std::process::ExitCode {
    // Before any thread starts: training and evaluation free and re-allocate MB-sized
    // tensors every step (see the module's docs). `bench train` prints what it did.
    let _ = emoedge::sys::malloc::keep_freed_memory();
    let cli = Cli::parse();
    match cli.run() {
        Ok(Outcome::Ok) => std::process::ExitCode::SUCCESS,
        Ok(Outcome::Partial(why)) => {
            eprintln!("warning: {why}");
            std::process::ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
