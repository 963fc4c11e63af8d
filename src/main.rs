use std::process::ExitCode;

// glibc malloc spent about a quarter of the destination's CPU (arena locks, consolidation) on
// the many short-lived buffers of record handling; mimalloc's thread-local pages avoid that.
// Built without transparent huge pages (feature `no_thp`): with them, resident memory grows
// in 2 MiB steps and stayed near 75 MiB where 4 KiB pages need about 55.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use conduit_connector_kinesis::cli::{self, Command};
use conduit_connector_kinesis::plugin;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (include/mimalloc.h).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// Freed pages go back to the OS after this long instead of mimalloc v3's default 1 s: the
/// destination frees its record buffers in bursts (a whole call's worth at each answer), and
/// the bench (`make bench`, `MIMALLOC_PURGE_DELAY=1000` against the default) showed peak RSS
/// of 61-81 MiB with 1 s and 46-56 MiB with 100 ms; CPU per record differed by less than the
/// run-to-run spread.
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// Sets the allocator's purge delay unless `MIMALLOC_PURGE_DELAY` chose one.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set only stores the value; any option id and value is allowed.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match cli::parse(&args) {
        Command::Plugin => run_plugin(),
        Command::Specs => {
            print!("{}", conduit_connector_kinesis::connector_yaml());
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("{}", conduit_connector_kinesis::version());
            ExitCode::SUCCESS
        }
        Command::Help => {
            print!("{}", cli::HELP);
            ExitCode::SUCCESS
        }
        Command::Produce(args) => cli::run_produce(&args),
        Command::Consume(args) => cli::run_consume(&args),
        Command::Unknown(command) => {
            eprintln!("unknown command {command:?}\n\n{}", cli::HELP);
            ExitCode::from(2)
        }
    }
}

fn run_plugin() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(plugin::serve(conduit_connector_kinesis::plugin()));
    // Background tasks (open streams, AWS connections) must not delay the exit the host waits for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            if matches!(
                error,
                plugin::ServeError::Handshake(plugin::env::HandshakeError::MissingMagicCookie)
            ) {
                eprintln!(
                    "This connector's name is `kinesis` (`standalone:kinesis`). Run it with \
                     --help for the commands it offers."
                );
            }
            ExitCode::FAILURE
        }
    }
}
