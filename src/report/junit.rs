//! JUnit XML (`-o junit=FILE`), the test-report format CI systems read (Jenkins, GitLab, GitHub
//! Actions' test reporters): one `<testsuite>` for the run, a `<testcase>` per threshold, per check of
//! each step, and one for the run's validity; failures say what was observed against what limit. It
//! follows the Jenkins xunit-plugin schema (junit-10.xsd), which the tests validate against.

use std::fmt::Write as _;

use super::RunReport;
use crate::util::rfc3339;

pub fn render(r: &RunReport) -> String {
    let cases = cases(r);
    let n_failed = cases.iter().filter(|c| c.failure.is_some()).count();
    let time = seconds(r.info.duration.as_secs_f64());
    let suite = format!("regbench {}", r.info.target);
    let mut o = String::new();
    let _ = writeln!(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let _ = writeln!(
        o,
        "<testsuites name=\"regbench\" tests=\"{}\" failures=\"{n_failed}\" errors=\"0\" time=\"{time}\">",
        cases.len()
    );
    // `timestamp` as ISO 8601 without a zone (the form Surefire and Ant write), in UTC.
    let timestamp = rfc3339(r.info.started_at).replace('Z', "");
    let _ = writeln!(
        o,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{n_failed}\" errors=\"0\" skipped=\"0\" \
         time=\"{time}\" timestamp=\"{timestamp}\">",
        attr(&suite),
        cases.len()
    );
    let _ = writeln!(o, "    <properties>");
    let all = r.agg.total.total();
    for (name, value) in [
        ("target", r.info.target.clone()),
        ("fingerprint", r.info.plan.fingerprint.clone()),
        ("seed", r.info.seed.to_string()),
        (
            "segment",
            format!("{}/{}", r.info.segment.index, r.info.segment.count),
        ),
        ("requests", all.n_requests.to_string()),
        ("errors", all.n_errors().to_string()),
        ("rps", format!("{:.1}", r.rate())),
        ("valid", r.validity.valid.to_string()),
        ("partial", r.info.partial().to_string()),
    ] {
        let _ = writeln!(
            o,
            "      <property name=\"{name}\" value=\"{}\"/>",
            attr(&value)
        );
    }
    let _ = writeln!(o, "    </properties>");
    for c in &cases {
        let _ = write!(
            o,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"0\"",
            attr(&c.class),
            attr(&c.name)
        );
        match &c.failure {
            None => {
                let _ = writeln!(o, "/>");
            }
            Some((kind, message, detail)) => {
                let _ = writeln!(
                    o,
                    ">\n      <failure type=\"{kind}\" message=\"{}\">{}</failure>\n    </testcase>",
                    attr(message),
                    text(detail)
                );
            }
        }
    }
    let _ = writeln!(o, "  </testsuite>\n</testsuites>");
    o
}

struct Case {
    class: String,
    name: String,
    /// The failure's type, its one-line message, and the text in it.
    failure: Option<(&'static str, String, String)>,
}

fn cases(r: &RunReport) -> Vec<Case> {
    let mut cases = Vec::new();
    for t in &r.thresholds {
        let th = &t.threshold;
        let (observed, why) = super::text::threshold_observed(r, t);
        let why = why.map_or(String::new(), |w| format!(" ({w})"));
        cases.push(Case {
            class: "regbench.thresholds".into(),
            name: format!("{} {}", th.key, th.expr),
            failure: (!t.pass).then(|| {
                (
                    "threshold",
                    format!("observed {observed}, limit {}{why}", th.expr),
                    format!(
                        "threshold {}: {}\nobserved: {observed}{why}",
                        th.key, th.expr
                    ),
                )
            }),
        });
    }
    for t in &r.agg.total.tags {
        for c in &t.checks {
            let n = c.passed + c.failed;
            cases.push(Case {
                class: format!("regbench.checks.{}", t.name),
                name: c.name.clone(),
                failure: (c.failed > 0).then(|| {
                    (
                        "check",
                        format!("{} of {n} responses failed the check", c.failed),
                        format!(
                            "step {}: check {} failed on {} of {n} responses ({:.3}%)",
                            t.name,
                            c.name,
                            c.failed,
                            100.0 * c.failed as f64 / n.max(1) as f64
                        ),
                    )
                }),
            });
        }
    }
    // An invalid run measured the generator or its host rather than the target; CI should show it
    // even when it does not fail the build (only `--strict` makes the exit code fail on it).
    cases.push(Case {
        class: "regbench.validity".into(),
        name: "the measurement is valid".into(),
        failure: (!r.validity.valid).then(|| {
            (
                "invalid",
                format!("the run is INVALID: {}", r.validity.reasons.join("; ")),
                r.validity.reasons.join("\n"),
            )
        }),
    });
    cases
}

/// Seconds with at most three decimals (the schema's SUREFIRE_TIME).
fn seconds(s: f64) -> String {
    format!("{s:.3}")
}

fn attr(s: &str) -> String {
    super::escape_markup(s, true)
}

fn text(s: &str) -> String {
    super::escape_markup(s, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_xml_cannot_carry() {
        assert_eq!(
            attr("a<b & \"c\"\n\u{1}"),
            "a&lt;b &amp; &quot;c&quot;&#10; "
        );
        assert_eq!(text("p(99)<1s & \u{7}x\ny"), "p(99)&lt;1s &amp;  x\ny");
        assert_eq!(text("it's \"x\""), "it&#39;s &quot;x&quot;");
        assert_eq!(seconds(12.34567), "12.346");
    }
}
