//! `cargo dbsafe`: set up, inspect and apply diesel migrations as recorded runs.

fn main() -> std::process::ExitCode {
    dbsafe::cli::dbsafe_main(env!("DBSAFE_LONG_VERSION"))
}
