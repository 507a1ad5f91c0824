//! `real-history DIR [COUNT]`: writes the generated "real" diesel history
//! (`dbsafe_tests::real_history`) into DIR/migrations, for bench/real_history.sh.

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!(
            "usage: real-history DIR [COUNT]  (writes DIR/migrations; COUNT >= 200, default 300)"
        );
        std::process::exit(2);
    };
    let count = args.next().map_or(300, |c| {
        c.parse().unwrap_or_else(|_| {
            eprintln!("real-history: COUNT must be a number, not {c}");
            std::process::exit(2)
        })
    });
    let history = dbsafe_tests::real_history::write_history(
        &std::path::Path::new(&dir).join("migrations"),
        count,
    );
    println!(
        "{} migrations in {dir}/migrations",
        history.migrations.len()
    );
}
