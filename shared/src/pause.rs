//! Named pause points for the fault tests: with `DBSAFE_TEST_PAUSE_AT=NAME` in the
//! environment, the process says `dbsafe: paused at NAME` on stderr when it reaches that
//! point and sleeps there, so a test can kill it at exactly the dangerous moment. Without
//! the variable a pause point costs one environment lookup.

/// Pauses here if the environment names this point (tests only).
pub fn point(name: &str) {
    if std::env::var_os("DBSAFE_TEST_PAUSE_AT").is_some_and(|v| v == name) {
        eprintln!("dbsafe: paused at {name}");
        std::thread::sleep(std::time::Duration::from_secs(120));
    }
}
