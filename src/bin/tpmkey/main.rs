//! `tpmkey`: keep SSH and signing keys inside the TPM.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd_info;

/// Keep SSH and signing keys inside the TPM.
#[derive(Parser)]
#[command(name = "tpmkey", version, about, long_about = None)]
struct Cli {
    /// TPM to use, as a TCTI string (default: $TPMKEY_TCTI, $TPM2TOOLS_TCTI, device:/dev/tpmrm0).
    #[arg(long, short = 'T', global = true, value_name = "TCTI")]
    tcti: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what TPM this is: manufacturer, firmware, algorithms, PCR banks, lockout state, SRK.
    Info {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print N random bytes from the TPM, in hex.
    Random {
        /// How many bytes.
        n: usize,
    },
}

fn open_tpm(tcti: &Option<String>) -> Result<tpmkey::Tpm, tpmkey::Error> {
    match tcti {
        Some(s) => {
            let t: tpmkey::tcti::Tcti = s
                .parse()
                .map_err(|e: tpmkey::tcti::TctiError| tpmkey::Error::Usage(e.to_string()))?;
            tpmkey::Tpm::open(&t)
        }
        None => tpmkey::Tpm::from_env(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Info { json } => {
            open_tpm(&cli.tcti).and_then(|mut tpm| cmd_info::run(&mut tpm, *json))
        }
        Command::Random { n } => open_tpm(&cli.tcti).and_then(|mut tpm| {
            let bytes = tpmkey::random::get_random(&mut tpm, *n)?;
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            println!("{hex}");
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tpmkey: {e}");
            ExitCode::FAILURE
        }
    }
}
