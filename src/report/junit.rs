//! `HERALD_JUNIT=path`: every step appends one `<testcase>` to a JUnit XML file, which GitLab shows
//! in the merge request's test widget (declare it as `artifacts:reports:junit`). No token needed.
//!
//! The file is valid XML after every step. Steps append in turn under an exclusive `flock`, and
//! each write replaces the file atomically (write a temporary file, rename it over), so a reader
//! or a step killed mid-write never sees half a document. Because the rename swaps the inode, a
//! writer that waited for the lock checks that it still holds the lock on the current file, and
//! retries if not.
//!
//! herald keeps its cases in one `<testsuite name="herald">`. A file written by another tool that
//! ends in `</testsuites>` gets herald's suite added; anything else is left alone with an error.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

/// One step as a JUnit test case.
pub struct TestCase<'a> {
    /// The job name (`CI_JOB_NAME`), so cases of different jobs group apart in GitLab.
    pub classname: &'a str,
    pub name: &'a str,
    pub time: Duration,
    /// `Some(message)` for a step that did not pass.
    pub failure: Option<&'a str>,
    /// The failure excerpt (masked), shown under the message.
    pub output: &'a [String],
}

const SUITE_OPEN: &str = "<testsuite name=\"herald\"";

pub fn append(path: &Path, case: &TestCase<'_>) -> io::Result<()> {
    loop {
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        lock_exclusive(&file)?;
        // Another writer may have renamed a new file over the path while we waited for the lock.
        if fs::metadata(path)?.ino() != file.metadata()?.ino() {
            continue;
        }
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(|e| invalid(path, &format!("cannot read it as UTF-8 text ({e})")))?;
        let updated = with_case(&text, case).map_err(|why| invalid(path, why))?;
        crate::persist::write_atomically(path, updated)?;
        return Ok(()); // the lock goes with `file`
    }
}

fn invalid(path: &Path, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display()))
}

/// `flock(LOCK_EX)` through std, again if a signal interrupts the wait.
fn lock_exclusive(file: &File) -> io::Result<()> {
    loop {
        match file.lock() {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            locked => return locked,
        }
    }
}

/// The document with `case` added. Pure, so every shape of existing file is tested directly.
fn with_case(text: &str, case: &TestCase<'_>) -> Result<String, &'static str> {
    let element = case_element(case);
    let failed = u64::from(case.failure.is_some());
    let seconds = case.time.as_secs_f64();

    if text.trim().is_empty() {
        return Ok(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n{}\n{element}</testsuite>\n</testsuites>\n",
            suite_open_tag(1, failed, seconds)
        ));
    }
    if let Some(open_at) = text.find(SUITE_OPEN) {
        let tag_len = text[open_at..].find('>').ok_or("herald's <testsuite> tag is cut off")? + 1;
        let tag = &text[open_at..open_at + tag_len];
        let close_at = open_at + text[open_at..].find("</testsuite>").ok_or("herald's <testsuite> is not closed")?;
        let tests = attribute(tag, "tests").and_then(|v| v.parse::<u64>().ok()).ok_or("bad tests count")?;
        let failures = attribute(tag, "failures").and_then(|v| v.parse::<u64>().ok()).ok_or("bad failures count")?;
        let time = attribute(tag, "time").and_then(|v| v.parse::<f64>().ok()).ok_or("bad time")?;
        let new_tag = suite_open_tag(tests + 1, failures + failed, time + seconds);
        return Ok(format!(
            "{}{new_tag}{}{element}{}",
            &text[..open_at],
            &text[open_at + tag_len..close_at],
            &text[close_at..]
        ));
    }
    if let Some(close_at) = text.rfind("</testsuites>") {
        let suite = format!("{}\n{element}</testsuite>\n", suite_open_tag(1, failed, seconds));
        return Ok(format!("{}{suite}{}", &text[..close_at], &text[close_at..]));
    }
    Err("not a JUnit report herald can add to (no <testsuites> element); leaving it as it is")
}

fn suite_open_tag(tests: u64, failures: u64, seconds: f64) -> String {
    format!("{SUITE_OPEN} tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{seconds:.3}\">")
}

fn case_element(case: &TestCase<'_>) -> String {
    let head = format!(
        "<testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
        escape(case.classname),
        escape(case.name),
        case.time.as_secs_f64()
    );
    match case.failure {
        None => format!("{head}/>\n"),
        Some(message) => {
            let text =
                std::iter::once(message.to_owned()).chain(case.output.iter().cloned()).collect::<Vec<_>>().join("\n");
            format!("{head}>\n<failure message=\"{}\">{}</failure>\n</testcase>\n", escape(message), escape(&text))
        }
    }
}

/// The value of `name="…"` inside one start tag.
fn attribute<'t>(tag: &'t str, name: &str) -> Option<&'t str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// Escapes for attribute values and text alike. Characters XML 1.0 forbids (most control
/// characters) become U+FFFD, so a hostile step name cannot make the file unreadable.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if let Some(entity) = super::entity(c) {
            out.push_str(entity);
            continue;
        }
        match c {
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Convenience for callers that only want to report a failure to append.
pub fn append_or_warn(path: &Path, case: &TestCase<'_>) {
    if let Err(error) = append(path, case) {
        let _ = writeln!(io::stderr(), "herald: HERALD_JUNIT: could not add the step to {}: {error}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case<'a>(name: &'a str, failure: Option<&'a str>) -> TestCase<'a> {
        TestCase { classname: "test job", name, time: Duration::from_millis(1500), failure, output: &[] }
    }

    #[test]
    fn starts_a_document_then_appends() {
        let one = with_case("", &case("unit", None)).unwrap();
        let two = with_case(&one, &case("lint", Some("failed (exit 2) after 1.5s"))).unwrap();
        assert_eq!(
            two,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n\
             <testsuite name=\"herald\" tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"0\" time=\"3.000\">\n\
             <testcase classname=\"test job\" name=\"unit\" time=\"1.500\"/>\n\
             <testcase classname=\"test job\" name=\"lint\" time=\"1.500\">\n\
             <failure message=\"failed (exit 2) after 1.5s\">failed (exit 2) after 1.5s</failure>\n</testcase>\n\
             </testsuite>\n</testsuites>\n"
        );
    }

    #[test]
    fn joins_another_tools_report() {
        let other = "<?xml version=\"1.0\"?>\n<testsuites><testsuite name=\"pytest\" tests=\"1\"><testcase name=\"t\"/></testsuite></testsuites>\n";
        let joined = with_case(other, &case("unit", None)).unwrap();
        assert!(joined.contains("<testsuite name=\"pytest\""));
        assert!(joined.contains("<testsuite name=\"herald\" tests=\"1\""));
        assert!(joined.trim_end().ends_with("</testsuites>"));
    }

    #[test]
    fn leaves_unknown_files_alone() {
        assert!(with_case("hello", &case("unit", None)).is_err());
        assert!(with_case("<testsuites><testsuite name=\"herald\" tests=\"x\"", &case("u", None)).is_err());
    }

    #[test]
    fn escapes_hostile_names() {
        assert_eq!(escape("<a href=\"x\">&'\u{1}"), "&lt;a href=&quot;x&quot;&gt;&amp;&apos;\u{FFFD}");
    }
}
