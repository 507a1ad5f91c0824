//! `cargo dbrollback`: roll back one run by its id, by reverting or by restoring.

fn main() -> std::process::ExitCode {
    dbsafe::cli::dbrollback_main(env!("DBSAFE_LONG_VERSION"))
}
