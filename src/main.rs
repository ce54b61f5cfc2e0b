//! `certctl-server`: parse settings, start logging, build the application, serve until a signal.
//! A panic anywhere is a bug: it is logged and the process exits with code 70 so the service
//! manager restarts it from a clean state (see ARCHITECTURE.md, "Failure policy").

use std::process::ExitCode;

use certctl::settings::{self, Command};
use certctl::startup::Application;
use certctl::telemetry;
use certctl_actors::error::cause_chain;

/// mimalloc instead of glibc's malloc: the list and create paths allocate many small strings per
/// row, and glibc's free-list upkeep (`malloc_consolidate`, `unlink_chunk`) was the server's
/// largest single cost in the api_tier profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match settings::load() {
        Ok(cli) => cli,
        Err(line) => {
            eprintln!("{line}");
            return ExitCode::from(2);
        }
    };
    if cli.print_config || cli.command == Some(Command::Config) {
        print!("{}", cli.settings.render());
        return ExitCode::SUCCESS;
    }
    if cli.command == Some(Command::Openapi) {
        return match serde_json::to_string_pretty(&certctl::http::openapi::openapi()) {
            Ok(document) => {
                println!("{document}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("certctl-server: the OpenAPI document could not be rendered: {e}");
                ExitCode::from(1)
            }
        };
    }
    telemetry::init_tracing(cli.settings.log_level, cli.settings.log_format);
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "panic: exiting so the service manager restarts certctl from a clean state");
        eprintln!("certctl-server: panic: {info}");
        std::process::exit(70);
    }));

    actix_web::rt::System::new().block_on(async move {
        let app = match Application::build(cli.settings).await {
            Ok(app) => app,
            Err(e) => {
                tracing::error!(error.cause_chain = %cause_chain(e.as_ref()), "start-up failed");
                eprintln!("certctl-server: start-up failed: {e:#}");
                return ExitCode::from(1);
            }
        };
        match app.run_until_stopped().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("certctl-server: {e:#}");
                ExitCode::from(1)
            }
        }
    })
}
