use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            EnvFilter::new("info,tower_http=info,sqlx=warn,wasmtime=warn,cranelift=warn")
        }))
        .init();
    match daifa::cli::run(daifa::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("daifa: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
