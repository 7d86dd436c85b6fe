//! The binary: parse the command, load configuration, start logging, run. Nothing else.

use std::collections::HashMap;
use std::process::ExitCode;

use supagate::config::{config_dir, Settings};
use supagate::server::Application;

/// mimalloc instead of glibc's malloc: a proxied request allocates and frees dozens of small
/// buffers (headers, bodies, futures); callgrind counted 8 % fewer instructions per request
/// and glibc's `malloc_consolidate`/`unlink_chunk` left the profile (bench/RESULTS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: supagate [serve | check-config | openapi | --help]";

fn main() -> ExitCode {
    let command = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "serve".to_owned());
    if matches!(command.as_str(), "-h" | "--help" | "help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    // The document depends on no configuration, so it prints even without a valid setup.
    if command == "openapi" {
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
    match command.as_str() {
        "check-config" => {
            print!("{}", settings.to_redacted_toml());
            ExitCode::SUCCESS
        }
        "serve" => serve(settings),
        other => {
            eprintln!("unknown command `{other}`; {USAGE}");
            ExitCode::from(2)
        }
    }
}

fn serve(settings: Settings) -> ExitCode {
    if let Err(e) = supagate::telemetry::init() {
        eprintln!("error: logging not started: {e:#}");
        return ExitCode::FAILURE;
    }
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings)?;
        tracing::info!("supagate listening on port {}", app.port());
        app.run().await?;
        tracing::info!("supagate stopped");
        anyhow::Ok(())
    });
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
