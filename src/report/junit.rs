//! JUnit XML: one test case per criterion, so CI systems (GitLab, Jenkins, GitHub test
//! reporters) show a failed threshold as a failed test, natively.
//!
//! Written by hand: the format is a dozen fixed elements, and escaping five characters is
//! all an XML library would add.

use super::Report;
use std::fmt::Write;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

pub fn render(r: &Report) -> String {
    let name = r
        .scenario
        .get("name")
        .and_then(|v| v.as_str())
        .unwrap_or("scenario");
    let tests = r.criteria.len();
    let failures = r.criteria.iter().filter(|c| !c.passed).count();
    let sec_failures = r.security.iter().filter(|f| f.failed()).count();
    let mut x = String::new();
    let _ = writeln!(x, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        x,
        r#"<testsuites name="mcpstorm" tests="{}" failures="{}" errors="0" time="{:.3}">"#,
        tests + r.security.len(),
        failures + sec_failures,
        r.duration_s
    );
    let _ = writeln!(
        x,
        r#"  <testsuite name="{}" tests="{tests}" failures="{failures}" errors="0" skipped="0" time="{:.3}" timestamp="{}">"#,
        escape(name),
        r.duration_s,
        escape(r.started_at.trim_end_matches('Z'))
    );
    let _ = writeln!(x, "    <properties>");
    for (k, v) in [
        ("target", r.target.description.as_str()),
        (
            "server",
            &format!("{} {}", r.target.server_name, r.target.server_version),
        ),
        ("protocol_version", r.target.protocol_version.as_str()),
        ("calls", &r.totals.calls.to_string()),
        ("success_rate", &format!("{:.4}", r.totals.success_rate)),
        (
            "verdict",
            if r.verdict == super::Verdict::Pass {
                "PASS"
            } else {
                "FAIL"
            },
        ),
    ] {
        let _ = writeln!(
            x,
            r#"      <property name="{}" value="{}"/>"#,
            escape(k),
            escape(v)
        );
    }
    let _ = writeln!(x, "    </properties>");
    for c in &r.criteria {
        let observed = c.observed_text();
        let case = format!("{} {}", c.name, c.threshold);
        let _ = write!(
            x,
            r#"    <testcase classname="mcpstorm.criteria.{}" name="{}" time="0">"#,
            escape(name),
            escape(&case)
        );
        if c.passed {
            let _ = writeln!(
                x,
                "<system-out>observed {}</system-out></testcase>",
                escape(&observed)
            );
        } else {
            let _ = writeln!(
                x,
                "\n      <failure type=\"criterion\" message=\"{}: observed {}\">observed {} where the criterion is {}</failure>\n    </testcase>",
                escape(&case),
                escape(&observed),
                escape(&observed),
                escape(&case)
            );
        }
    }
    let _ = writeln!(
        x,
        "    <system-out>{}</system-out>",
        escape(&super::summary::render(r, None))
    );
    let _ = writeln!(x, "  </testsuite>");
    if !r.security.is_empty() {
        security_suite(&mut x, r, sec_failures);
    }
    let _ = writeln!(x, "</testsuites>");
    x
}

/// One test case per security finding: a failed finding is a `<failure>` with its severity,
/// evidence and advice; a skipped one is `<skipped>`.
fn security_suite(x: &mut String, r: &Report, failures: usize) {
    use crate::security::Outcome;
    let skipped = r
        .security
        .iter()
        .filter(|f| f.outcome == Outcome::Skip)
        .count();
    let _ = writeln!(
        x,
        r#"  <testsuite name="security" tests="{}" failures="{failures}" errors="0" skipped="{skipped}" time="0">"#,
        r.security.len()
    );
    for f in &r.security {
        let _ = write!(
            x,
            r#"    <testcase classname="mcpstorm.security.{}" name="{}" time="0">"#,
            escape(&f.category),
            escape(&f.probe)
        );
        match f.outcome {
            Outcome::Pass => {
                let _ = writeln!(
                    x,
                    "<system-out>{}</system-out></testcase>",
                    escape(&f.title)
                );
            }
            Outcome::Skip => {
                let _ = writeln!(x, "<skipped message=\"{}\"/></testcase>", escape(&f.title));
            }
            Outcome::Fail => {
                let _ = writeln!(
                    x,
                    "\n      <failure type=\"{}\" message=\"[{}] {}\">request: {}\nresponse: {}\nadvice: {}</failure>\n    </testcase>",
                    f.severity.name(),
                    f.severity.name(),
                    escape(&f.title),
                    escape(&f.evidence.request),
                    escape(&f.evidence.response),
                    escape(&f.advice)
                );
            }
        }
    }
    let _ = writeln!(x, "  </testsuite>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_xml_needs() {
        assert_eq!(
            escape("p95 < 5s & \"x\""),
            "p95 &lt; 5s &amp; &quot;x&quot;"
        );
        assert_eq!(escape("a\u{1}b"), "a b");
    }
}
