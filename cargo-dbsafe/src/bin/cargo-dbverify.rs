//! `cargo dbverify`: verify invariants on a live database.

fn main() -> std::process::ExitCode {
    dbsafe::cli::dbverify_main(env!("DBSAFE_LONG_VERSION"))
}
