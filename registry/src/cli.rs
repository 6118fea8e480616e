//! The command line: `registry [serve]`, `registry check-config` and
//! `registry --version`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use registry_config::Config;

use crate::extensions::LinkedExtension;

/// A container image registry for the OCI Distribution API.
#[derive(Debug, Parser)]
#[command(name = "registry", version, about)]
struct Cli {
    /// Configuration file (YAML). Without it, REGISTRY_CONFIG names the
    /// file; with neither, the built-in defaults serve 127.0.0.1:5000 from
    /// ./data.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the registry API (the default command).
    Serve,
    /// Validate the configuration and print it, with defaults filled in and
    /// secrets masked.
    CheckConfig,
    /// List the extensions linked into this binary, whether each is enabled
    /// by the configuration, and the signals each receives.
    Extensions,
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let env: BTreeMap<String, String> = std::env::vars().collect();

    let config = match registry_config::load_file(cli.config.as_deref(), &env) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("registry: configuration error: {error}");
            return ExitCode::from(2);
        }
    };

    let linked = match crate::extensions::load(&config) {
        Ok(linked) => linked,
        Err(error) => {
            eprintln!("registry: configuration error: {error}");
            return ExitCode::from(2);
        }
    };

    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => check_config(&config),
        Command::Extensions => {
            print!("{}", crate::extensions::describe(&linked));
            ExitCode::SUCCESS
        }
        Command::Serve => serve(config, linked),
    }
}

fn check_config(config: &Config) -> ExitCode {
    match config.source() {
        Some(path) => println!("# configuration from {}", path.display()),
        None => println!("# built-in defaults"),
    }
    print!("{}", config.to_masked_yaml());
    ExitCode::SUCCESS
}

fn serve(config: Config, linked: Vec<LinkedExtension>) -> ExitCode {
    crate::logging::init(&config.settings.log);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("registry: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::server::serve(config, linked)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("registry stopped: {error:#}");
            ExitCode::FAILURE
        }
    }
}
