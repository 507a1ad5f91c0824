//! The documented exit codes (README, DESIGN.md), shared by the three binaries.

use crate::error::{Error, Severity};

/// Success; every check passed.
pub const SUCCESS: u8 = 0;
/// The command ran and found problems, or an apply failed and was reverted.
pub const FAILED: u8 = 1;
/// Bad usage or configuration; nothing was touched.
pub const USAGE: u8 = 2;
/// Refused by a guard: protected target, identity mismatch, dirty target, lock held.
pub const REFUSED: u8 = 3;
/// The database needs attention: a failure dbsafe could not undo.
pub const ATTENTION: u8 = 4;

/// The exit code of an error.
pub fn code_of(error: &Error) -> u8 {
    match error.severity() {
        Severity::Failed => FAILED,
        Severity::Usage => USAGE,
        Severity::Refused => REFUSED,
        Severity::Attention => ATTENTION,
    }
}
