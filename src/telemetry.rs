//! Logging: one `tracing` subscriber for supagate's own lines, its request spans and the
//! `log` records of actix and reqwest, filtered by `RUST_LOG` (default `info`), on stderr.

use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;
use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// The filter `RUST_LOG` gives (`info` when unset or empty). Directives that do not parse are
/// skipped rather than fatal, as they were under `env_logger`.
pub fn env_filter() -> EnvFilter {
    EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy()
}

/// The subscriber: one line per event, prefixed with the spans it happened in (the request
/// span names the request), written by `writer`.
pub fn subscriber<W>(
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .finish()
}

/// Installs the subscriber for the process, on stderr (colours only on a terminal), and
/// routes `log` records (actix, reqwest) into it, so they are filtered alike and carry the
/// span of the request that caused them.
pub fn init() -> anyhow::Result<()> {
    use tracing_subscriber::util::SubscriberInitExt;
    let ansi = std::io::stderr().is_terminal();
    subscriber(env_filter(), std::io::stderr, ansi).try_init()?;
    Ok(())
}
