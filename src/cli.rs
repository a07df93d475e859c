//! The command line: `serve`, `check-config`, `rebuild`, `verify`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "zenedge", version, about = "Hospital edge daemon: durable HL7 v2 and DICOM intake")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve {
        /// The configuration file (see config.example.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file: prints every problem with its key, exits 78 if any.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
    },
    /// Drop every projection and replay the log (the daemon must be stopped). Prints a
    /// digest of the projections before and after.
    Rebuild {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Replay the log in memory and compare with the projections on disk; changes nothing.
    /// Exits 1 if they differ (the daemon must be stopped).
    Verify {
        #[arg(long, short)]
        config: PathBuf,
    },
}
