//! `cargo dbsafe completions SHELL`: completions for the three binaries, by clap_complete.

use clap_complete::Shell;

/// Writes the completions of cargo-dbsafe, cargo-dbverify and cargo-dbrollback for `shell`
/// to stdout. They complete the binaries' own names: `cargo-dbsafe status` runs the same
/// command as `cargo dbsafe status`, and cargo's own completion stays untouched.
pub fn write(shell: Shell) {
    let mut out = std::io::stdout();
    for (name, mut command) in [
        ("cargo-dbsafe", super::dbsafe_cmd::command()),
        ("cargo-dbverify", super::dbverify_cmd::command()),
        ("cargo-dbrollback", super::dbrollback_cmd::command()),
    ] {
        clap_complete::generate(shell, &mut command, name, &mut out);
    }
}
