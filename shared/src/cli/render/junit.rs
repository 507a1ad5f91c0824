//! JUnit XML of verification results (written with `quick-junit`), for CI systems that show
//! test reports: one `<testsuite>` per target (a fleet writes one per member), named
//! `dbverify TARGET`, one `<testcase>` per check, classname `dbverify.KIND`.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::verify::{CheckResult, Status};

/// The document: a suite per `(target, results)`. A failed check is a `<failure>`, one that
/// could not run an `<error>` (message: what was observed, text: the details), a warning
/// passes with its details in `<system-out>`.
pub fn verify_results<'a>(
    suites: impl IntoIterator<Item = (&'a str, &'a [CheckResult])>,
) -> crate::error::Result<String> {
    let mut report = Report::new("dbverify");
    let mut total = Duration::ZERO;
    for (target, results) in suites {
        let mut suite = TestSuite::new(format!("dbverify {target}"));
        let time: Duration = results.iter().map(duration).sum();
        suite.set_time(time);
        total += time;
        suite.add_test_cases(results.iter().map(test_case));
        report.add_test_suite(suite);
    }
    report.set_time(total);
    report
        .to_string()
        .map_err(|e| crate::error::Error::Failed(format!("writing the JUnit report: {e}")))
}

fn duration(result: &CheckResult) -> Duration {
    Duration::from_millis(result.duration_ms)
}

fn test_case(result: &CheckResult) -> TestCase {
    let details = result.details.join("\n");
    let non_success = |kind| {
        let mut status = TestCaseStatus::non_success(kind);
        status
            .set_message(result.observed.as_str())
            .set_description(details.as_str());
        status
    };
    let status = match result.status {
        Status::Pass | Status::Warn => TestCaseStatus::success(),
        Status::Fail => non_success(NonSuccessKind::Failure),
        Status::Error => non_success(NonSuccessKind::Error),
    };
    let mut case = TestCase::new(result.name.as_str(), status);
    case.set_classname(format!("dbverify.{}", result.kind))
        .set_time(duration(result));
    if result.status == Status::Warn {
        case.set_system_out(format!("warning: {}\n{details}", result.observed));
    }
    case
}
