//! JUnit XML of verification results, for CI systems that show test reports.

use super::{CheckResult, Status};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// One `<testsuite>` named after the target, one `<testcase>` per check: a failed check is
/// a `<failure>`, one that could not run an `<error>`, a warning passes with the details in
/// `<system-out>`.
pub fn junit_xml(target: &str, results: &[CheckResult]) -> String {
    let failures = results.iter().filter(|r| r.status == Status::Fail).count();
    let errors = results.iter().filter(|r| r.status == Status::Error).count();
    let seconds: f64 = results.iter().map(|r| r.duration_ms as f64 / 1000.0).sum();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!(
        "<testsuites name=\"dbverify\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{seconds:.3}\">\n",
        results.len()
    ));
    xml.push_str(&format!(
        "  <testsuite name=\"dbverify {}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\" time=\"{seconds:.3}\">\n",
        escape(target),
        results.len()
    ));
    for result in results {
        xml.push_str(&format!(
            "    <testcase classname=\"dbverify.{}\" name=\"{}\" time=\"{:.3}\">",
            result.kind,
            escape(&result.name),
            result.duration_ms as f64 / 1000.0
        ));
        let body = escape(&result.details.join("\n"));
        let message = escape(&result.observed);
        match result.status {
            Status::Pass => {}
            Status::Fail => xml.push_str(&format!(
                "\n      <failure message=\"{message}\">{body}</failure>\n    "
            )),
            Status::Error => xml.push_str(&format!(
                "\n      <error message=\"{message}\">{body}</error>\n    "
            )),
            Status::Warn => xml.push_str(&format!(
                "\n      <system-out>warning: {message}\n{body}</system-out>\n    "
            )),
        }
        xml.push_str("</testcase>\n");
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}
