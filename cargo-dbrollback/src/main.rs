//! `cargo dbrollback`: roll back one run by its id (not yet available).

fn main() -> std::process::ExitCode {
    dbsafe::cli::not_yet_available("dbrollback")
}
