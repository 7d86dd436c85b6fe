//! The binary: parse the command, load configuration, start logging, run. Nothing else.

use std::collections::HashMap;
use std::process::ExitCode;

use supagate::checked::Checked;
use supagate::config::{config_dir, Settings};
use supagate::server::Application;

/// mimalloc instead of glibc's malloc: a proxied request allocates and frees dozens of small
/// buffers (headers, bodies, futures); callgrind counted 8 % fewer instructions per request
/// and glibc's `malloc_consolidate`/`unlink_chunk` left the profile (bench/RESULTS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// supagate: a Supabase gateway. Configuration: the compiled-in defaults, then
/// `$SUPAGATE_CONFIG_DIR` (or `./config`) `default.toml` and `<APP_ENV>.toml` when present,
/// then `SUPAGATE_<SECTION>__<KEY>` and the well-known environment names (README).
#[derive(clap::Parser)]
#[command(name = "supagate", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Clone, Copy, PartialEq, Eq)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Consume the job queues (Stripe events, user-registered mails) until SIGTERM/SIGINT.
    Worker,
    /// Print the effective configuration, secrets redacted, and what it comes to.
    CheckConfig,
    /// Print the OpenAPI document (needs no configuration).
    Openapi,
}

fn main() -> ExitCode {
    let cli = match <Cli as clap::Parser>::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` are answers (exit 0); a wrong word is a usage error.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    // The document depends on no configuration, so it prints even without a valid setup.
    if command == Command::Openapi {
        println!("{}", supagate::openapi::document_json());
        return ExitCode::SUCCESS;
    }
    // A missing .env is normal; a malformed one is reported and ignored like a missing one.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("warning: .env not read: {e}");
        }
    }
    let env: HashMap<String, String> = std::env::vars().collect();
    let settings = match Settings::load(&config_dir(&env), &env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::CheckConfig => {
            if let Err(code) = checked(&settings) {
                return code;
            }
            let forwarding = settings.client_ip_forwarding();
            if !forwarding.is_on() {
                eprintln!(
                    "warning: per-client Auth rate limits are {}",
                    forwarding.describe()
                );
            }
            print!("{}", settings.to_redacted_toml());
            ExitCode::SUCCESS
        }
        Command::Serve => match checked(&settings) {
            Ok(checked) => serve(settings, checked),
            Err(code) => code,
        },
        Command::Worker => worker(settings),
        Command::Openapi => ExitCode::SUCCESS,
    }
}

/// The settings that name operations, checked against the route table (once per run); a
/// problem is one line naming the setting and exit code 2, as for any malformed setting.
fn checked(settings: &Settings) -> Result<Checked, ExitCode> {
    supagate::server::check(settings).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

fn serve(settings: Settings, checked: Checked) -> ExitCode {
    run_logged(async move {
        let forwarding = settings.client_ip_forwarding();
        if !forwarding.is_on() {
            tracing::warn!("per-client Auth rate limits are {}", forwarding.describe());
        }
        let app = Application::build_checked(settings, checked)?;
        tracing::info!("supagate listening on port {}", app.port());
        app.run().await?;
        tracing::info!("supagate stopped");
        anyhow::Ok(())
    })
}

/// Starts logging, runs `main` on the actix runtime, and turns its error into exit code 1.
fn run_logged(main: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    if let Err(e) = supagate::telemetry::init() {
        eprintln!("error: logging not started: {e:#}");
        return ExitCode::FAILURE;
    }
    let result = actix_web::rt::System::new().block_on(main);
    // Lines still in the log buffer go out before the process ends.
    supagate::telemetry::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `supagate worker`: consumes the job queues until SIGTERM/SIGINT (see `supagate::jobs`).
fn worker(settings: Settings) -> ExitCode {
    if settings.supabase.service_role_key.is_none() {
        eprintln!(
            "configuration error: supabase.service_role_key (SUPABASE_SECRET_KEY / \
             SUPABASE_SERVICE_ROLE_KEY): missing (the worker reads queues with it)"
        );
        return ExitCode::from(2);
    }
    run_logged(async move {
        let supabase = supagate::supabase::Supabase::new(&settings)?;
        let handlers = supagate::jobs::default_handlers(&settings, supabase.clone())?;
        if !settings.worker.metrics_listen.is_empty() {
            let server = supagate::jobs::worker::metrics_server(&settings.worker.metrics_listen)?;
            actix_web::rt::spawn(server);
        }
        supagate::jobs::worker::Worker::new(supabase, handlers, settings.worker.clone())
            .with_idempotency(&settings.idempotency)
            .run(shutdown_signal())
            .await;
        anyhow::Ok(())
    })
}

/// SIGTERM (orchestrators) or SIGINT (a terminal).
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
