//! `cargo dbverify`: verify invariants on a live database (not yet available).

fn main() -> std::process::ExitCode {
    dbsafe::cli::not_yet_available("dbverify")
}
