//! The commands whose issues have not landed yet (`cargo dbverify`, `cargo dbrollback`):
//! they say so and exit 2, touching nothing.

use std::process::ExitCode;

use super::exit;

/// Prints that `cargo NAME` is not available in this version and returns exit code 2.
pub fn not_yet_available(name: &str) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--version" || a == "-V") {
        println!("cargo-{name} {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "error: cargo {name} is not yet available in dbsafe {}; nothing was touched",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(exit::USAGE)
}
