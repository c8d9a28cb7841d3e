//! The `convnet` command: train, evaluate, inspect and run CNNs on the CPU.

use std::io::Write;

use clap::Parser;
use convnet::app;

mod cli;

use cli::{run, Cli, Command};

/// The exit status when standard output is a pipe its reader closed: what a
/// shell reports for a program killed by SIGPIPE (128 + 13), without the
/// signal (which the standard library ignores and `unsafe` would restore).
const EXIT_BROKEN_PIPE: i32 = 141;

/// Turns the panic of a `println!` whose standard output failed (left in
/// library code, e.g. training progress lines) into what a failed
/// [`convnet::app::write_stdout`] does: a quiet exit on a broken pipe, a
/// one-line error otherwise. Every other panic keeps the default report.
fn stdout_failures_are_not_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        // The standard library's message: "failed printing to stdout: {io error}".
        if let Some(cause) = msg.strip_prefix("failed printing to stdout: ") {
            if cause.starts_with("Broken pipe") {
                std::process::exit(EXIT_BROKEN_PIPE);
            }
            eprintln!("error: standard output: {cause}");
            std::process::exit(1);
        }
        default(info)
    }));
}

fn main() {
    stdout_failures_are_not_panics();
    let cli = Cli::parse();
    // `--distributed`: this process joins the MPI job (or learns why not).
    let job = match &cli.command {
        Command::Train(a) if a.sync_bn => {
            eprintln!("error: {}", app::distributed::sync_bn_refused());
            std::process::exit(1);
        }
        Command::Train(a) if a.distributed => match app::distributed::Job::start() {
            Ok(job) => Some(job),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        },
        _ => None,
    };
    // Output still buffered is written now, so that its failure is reported.
    let result = run(cli, job.as_ref()).and_then(|()| {
        std::io::stdout()
            .flush()
            .map_err(|e| app::AppError::io("standard output", e).into())
    });
    if let Err(e) = result {
        let e: &(dyn std::error::Error + 'static) = &*e;
        if app::is_broken_pipe(e) {
            std::process::exit(EXIT_BROKEN_PIPE);
        }
        eprintln!("error: {}", app::error_message(e));
        if let Some(job) = &job {
            // The other ranks wait for this one: end them too.
            job.abort(1);
        }
        std::process::exit(1);
    }
}
