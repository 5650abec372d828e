//! Logging setup in one place; the sink is a parameter so tests can stay quiet.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Installs a global subscriber writing to `sink`, filtered by `RUST_LOG` (default
/// `default_filter`), colored only for a terminal. Safe to call more than once: later
/// calls do nothing.
pub fn init<W>(default_filter: &str, sink: W, ansi: bool)
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink)
        .with_ansi(ansi)
        .try_init();
}
