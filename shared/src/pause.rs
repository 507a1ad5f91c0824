//! Named pause points for the fault tests: with `DBSAFE_TEST_PAUSE_AT=NAME` in the
//! environment, the process says `dbsafe: paused at NAME` on stderr when it reaches that
//! point and sleeps there, so a test can kill it at exactly the dangerous moment. Without
//! the variable a pause point costs one environment lookup.

/// Pauses here if the environment names this point (tests only): `NAME` sleeps two minutes,
/// `NAME:MILLIS` that many milliseconds (a test that takes a lock meanwhile, then lets the
/// process go on).
pub fn point(name: &str) {
    let Some(asked) = std::env::var_os("DBSAFE_TEST_PAUSE_AT") else {
        return;
    };
    let asked = asked.to_string_lossy();
    let (point, millis) = asked
        .split_once(':')
        .map_or((&*asked, 120_000), |(point, ms)| {
            (point, ms.parse().unwrap_or(120_000))
        });
    if point == name {
        eprintln!("dbsafe: paused at {name}");
        std::thread::sleep(std::time::Duration::from_millis(millis));
    }
}
