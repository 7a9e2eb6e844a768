//! The merge-request note: one Markdown body that shows every job of the pipeline and every
//! herald step in it. Pure: the same state always renders to the same text, which is what lets
//! many writers agree on what the note should say (publish/note.rs).
//!
//! Layout: a header with the pipeline's state and the step counts; one table with what needs
//! attention first (failed and canceled steps), then everything else in pipeline order (job id,
//! then step creation order), so rows do not jump as the pipeline advances. When the table grows
//! long, passed steps move into a collapsed `<details>` block. The note stays under GitLab's size
//! limit by dropping, in turn, the passed rows and then the tail of the table, saying so.
//!
//! Everything that comes from names or output is escaped: Markdown and HTML are neutralised, `@`
//! cannot mention anyone, and no line can start with `/` (GitLab runs quick actions such as
//! `/merge` found at the start of a line, on create and on every update).

use std::fmt::Write as _;

/// GitLab refuses longer notes (gitlab.md §B.1); herald keeps a margin below it.
pub const GITLAB_NOTE_LIMIT: usize = 1_000_000;
const BUDGET: usize = 990_000;
/// More table rows than this, and passed steps are collapsed.
const COLLAPSE_PASSED_OVER: usize = 25;

const MARKER_START: &str = "<!-- herald:note pipeline=";

/// The hidden first line that identifies herald's note and the pipeline it shows.
pub fn marker(pipeline_id: u64) -> String {
    format!("{MARKER_START}{pipeline_id} -->")
}

/// The body a writer creates the note with, before it has read the pipeline: creating it at once
/// makes the window in which concurrent writers each create one a single request wide, and the
/// nonce makes every writer's claim its own (so each removes only its own duplicate).
pub fn claim(pipeline_id: u64, nonce: &str) -> String {
    format!(
        "{}\n#### ⏳ Pipeline #{pipeline_id} · gathering its steps…\n\n<!-- herald:claim {nonce} -->\n",
        marker(pipeline_id)
    )
}

/// The pipeline a note body shows, if it is a herald note.
pub fn pipeline_of(body: &str) -> Option<u64> {
    let rest = body.strip_prefix(MARKER_START)?;
    rest[..rest.find(' ')?].parse().ok()
}

/// What the note shows; built from GitLab's answers, never from the note's own text.
#[derive(Debug, Clone, PartialEq)]
pub struct NoteView {
    pub pipeline: PipelineView,
    /// In pipeline order (job id).
    pub jobs: Vec<JobView>,
    /// Steps whose job is not among the pipeline's jobs (e.g. posted from elsewhere).
    pub unattached: Vec<StepView>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PipelineView {
    pub id: u64,
    /// GitLab's pipeline status: `running`, `success`, `failed`, `canceled`, ...
    pub status: String,
    pub web_url: Option<String>,
    pub sha: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    pub id: u64,
    pub name: String,
    /// GitLab's job status.
    pub status: String,
    pub web_url: Option<String>,
    /// herald's steps of this job, in the order they started.
    pub steps: Vec<StepView>,
    /// Steps the configuration says this job will run, not started yet.
    pub planned: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepView {
    pub name: String,
    pub state: StepState,
    /// The status description: `passed in 1.2s`, `failed (exit 2) after 4.1s`.
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StepState {
    Failed,
    Canceled,
    Running,
    Waiting,
    /// Failed in a job that passed anyway or may fail: a warning, not a failure (posted as
    /// `success` with an `allowed: ` description, publish::settle).
    Allowed,
    Passed,
}

impl StepState {
    /// From one of herald's statuses: its state, and its description for allowed failures.
    pub fn of_step(status: &str, description: &str) -> StepState {
        match StepState::from_status(status) {
            StepState::Passed if description.starts_with(crate::publish::ALLOWED) => StepState::Allowed,
            state => state,
        }
    }

    /// From a GitLab status: commit statuses and CI jobs use the same words.
    pub fn from_status(status: &str) -> StepState {
        match status {
            "success" => StepState::Passed,
            "failed" => StepState::Failed,
            "canceled" | "skipped" => StepState::Canceled,
            "running" => StepState::Running,
            _ => StepState::Waiting,
        }
    }

    fn icon(self) -> &'static str {
        match self {
            StepState::Failed => "❌",
            StepState::Canceled => "⛔",
            StepState::Running => "🔵",
            StepState::Waiting => "⏳",
            StepState::Allowed => "⚠️",
            StepState::Passed => "✅",
        }
    }
}

/// One table row.
struct Row<'v> {
    state: StepState,
    job: Option<&'v JobView>,
    step: String,
    result: String,
}

pub fn render(view: &NoteView) -> String {
    let rows = rows(view);
    let (attention, rest): (Vec<&Row>, Vec<&Row>) =
        rows.iter().partition(|row| matches!(row.state, StepState::Failed | StepState::Canceled));
    let collapse = rows.len() > COLLAPSE_PASSED_OVER;
    let (shown, passed): (Vec<&Row>, Vec<&Row>) =
        if collapse { rest.into_iter().partition(|row| row.state != StepState::Passed) } else { (rest, Vec::new()) };
    let visible: Vec<&Row> = attention.into_iter().chain(shown).collect();

    let head = header(view, &rows);
    let foot = footer(view);
    let passed_block = details(&passed);
    let mut table = table(&visible);
    let mut body = format!("{head}{table}{passed_block}{foot}");
    if body.len() > BUDGET {
        // First drop the passed rows, then cut the table itself.
        let summary =
            format!("\n✅ {} passed steps are not listed: the note would exceed GitLab's size limit.\n", passed.len());
        let room = BUDGET.saturating_sub(head.len() + foot.len() + summary.len() + 200);
        if table.len() > room {
            table = cut_table(&visible, room);
        }
        let passed_line = if passed.is_empty() { String::new() } else { summary };
        body = format!("{head}{table}{passed_line}{foot}");
    }
    no_line_starts_with_slash(body)
}

fn rows(view: &NoteView) -> Vec<Row<'_>> {
    let mut rows = Vec::new();
    for job in &view.jobs {
        for step in &job.steps {
            rows.push(Row {
                state: step.state,
                job: Some(job),
                step: step.name.clone(),
                result: step.description.clone(),
            });
        }
        for planned in &job.planned {
            rows.push(Row {
                state: StepState::Waiting,
                job: Some(job),
                step: planned.clone(),
                result: "waiting".into(),
            });
        }
        if job.steps.is_empty() && job.planned.is_empty() {
            rows.push(Row {
                state: StepState::from_status(&job.status),
                job: Some(job),
                step: "—".into(),
                result: job.status.replace('_', " "),
            });
        }
    }
    for step in &view.unattached {
        rows.push(Row { state: step.state, job: None, step: step.name.clone(), result: step.description.clone() });
    }
    rows
}

fn header(view: &NoteView, rows: &[Row]) -> String {
    let pipeline = &view.pipeline;
    let (icon, word) = match pipeline.status.as_str() {
        "success" => ("✅", "passed"),
        "failed" => ("❌", "failed"),
        "canceled" | "canceling" => ("⛔", "canceled"),
        "skipped" => ("⏭️", "skipped"),
        "running" => ("🔵", "running"),
        "manual" => ("⏸️", "waiting for a manual action"),
        _ => ("⏳", "pending"),
    };
    let link = match &pipeline.web_url {
        Some(url) => format!("[#{}]({})", pipeline.id, url_cell(url)),
        None => format!("#{}", pipeline.id),
    };
    let count = |state: StepState| rows.iter().filter(|r| r.state == state && r.step != "—").count();
    let steps = rows.iter().filter(|r| r.step != "—").count();
    let parts: Vec<String> = [
        (StepState::Passed, "passed"),
        (StepState::Allowed, "allowed to fail"),
        (StepState::Failed, "failed"),
        (StepState::Canceled, "canceled"),
        (StepState::Running, "running"),
        (StepState::Waiting, "waiting"),
    ]
    .iter()
    .filter(|(state, _)| count(*state) > 0)
    .map(|(state, word)| format!("{} {word}", count(*state)))
    .collect();
    let tally = if parts.is_empty() { String::new() } else { format!(": {}", parts.join(", ")) };
    let plural = if steps == 1 { "" } else { "s" };
    format!("{}\n#### {icon} Pipeline {link} {word} · {steps} step{plural}{tally}\n\n", marker(pipeline.id))
}

fn footer(view: &NoteView) -> String {
    let short: String = view.pipeline.sha.chars().take(8).collect();
    format!("\n<sub>herald · commit <code>{}</code> · one commit status per step</sub>\n", cell(&short))
}

const TABLE_HEAD: &str = "| | job | step | result |\n|:-:|---|---|---|\n";

fn table(rows: &[&Row]) -> String {
    let mut text = String::from(TABLE_HEAD);
    for row in rows {
        text.push_str(&row_line(row));
    }
    text
}

/// The table's first rows that fit in `room` bytes, and a line saying how many were left out.
fn cut_table(rows: &[&Row], room: usize) -> String {
    let mut text = String::from(TABLE_HEAD);
    for (shown, row) in rows.iter().enumerate() {
        let line = row_line(row);
        if text.len() + line.len() > room {
            let _ = write!(
                text,
                "\n… and {} more rows, not listed: the note would exceed GitLab's size limit.\n",
                rows.len() - shown
            );
            return text;
        }
        text.push_str(&line);
    }
    text
}

fn row_line(row: &Row) -> String {
    let job = match row.job {
        Some(job) => match &job.web_url {
            Some(url) => format!("[{}]({})", cell(&job.name), url_cell(url)),
            None => cell(&job.name),
        },
        None => "—".into(),
    };
    let step = if row.step == "—" { "—".to_owned() } else { cell(&row.step) };
    format!("| {} | {job} | {step} | {} |\n", row.state.icon(), cell(&row.result))
}

/// Whether `body` shows this step of this job in this state with this result: then it was
/// rendered from a state that already had it, and a writer of that state need not write again.
pub fn shows_step(body: &str, job_name: &str, job_url: Option<&str>, step: &str, state: &str, result: &str) -> bool {
    let job = JobView {
        id: 0,
        name: job_name.to_owned(),
        status: String::new(),
        web_url: job_url.map(str::to_owned),
        steps: Vec::new(),
        planned: Vec::new(),
    };
    let row =
        Row { state: StepState::from_status(state), job: Some(&job), step: step.to_owned(), result: result.to_owned() };
    body.contains(&row_line(&row))
}

fn details(passed: &[&Row]) -> String {
    if passed.is_empty() {
        return String::new();
    }
    let plural = if passed.len() == 1 { "" } else { "s" };
    format!("\n<details><summary>✅ {} passed step{plural}</summary>\n\n{}\n</details>\n", passed.len(), table(passed))
}

/// Text for a table cell: no line breaks, Markdown and HTML neutralised, no mentions.
pub fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            // A zero-width space after @ keeps `@all` from notifying anyone; backslash escapes do
            // not, because GitLab finds mentions in the rendered text.
            '@' => out.push_str("@\u{200b}"),
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '!' | '~' | '$' | '%' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A link target: only http(s), with the characters that would end the Markdown link encoded.
fn url_cell(url: &str) -> String {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return "#".into();
    }
    url.chars()
        .map(|c| match c {
            ' ' => "%20".to_owned(),
            '(' => "%28".to_owned(),
            ')' => "%29".to_owned(),
            '<' => "%3C".to_owned(),
            '>' => "%3E".to_owned(),
            '"' => "%22".to_owned(),
            '|' => "%7C".to_owned(),
            // Not a mention in a link's target either; GitLab's URLs never carry user info.
            '@' => "%40".to_owned(),
            c if c.is_control() => String::new(),
            c => c.to_string(),
        })
        .collect()
}

/// Defence in depth against quick actions: whatever the layout above does, no line of the body
/// starts with `/` (after optional indentation).
fn no_line_starts_with_slash(body: String) -> String {
    if !body.lines().any(|line| line.trim_start().starts_with('/')) {
        return body;
    }
    body.lines()
        .map(
            |line| {
                if line.trim_start().starts_with('/') {
                    format!("\\{}", line.trim_start())
                } else {
                    line.to_owned()
                }
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip() {
        assert_eq!(pipeline_of(&format!("{}\nrest", marker(1234))), Some(1234));
        assert_eq!(pipeline_of("<!-- something else -->"), None);
        assert_eq!(pipeline_of("text <!-- herald:note pipeline=5 -->"), None, "only at the very start");
    }

    #[test]
    fn cells_are_inert() {
        assert_eq!(cell("/merge"), "/merge", "never at a line's start: cells follow `| `");
        assert_eq!(cell("a | b"), "a \\| b");
        assert_eq!(cell("</details><script>"), "&lt;/details&gt;&lt;script&gt;");
        assert_eq!(cell("@all"), "@\u{200b}all");
        assert_eq!(cell("x\ny"), "x y");
        assert_eq!(cell("`rm -rf`"), "\\`rm -rf\\`");
    }

    #[test]
    fn links_cannot_escape() {
        assert_eq!(url_cell("javascript:alert(1)"), "#");
        assert_eq!(url_cell("https://x/a b)(c"), "https://x/a%20b%29%28c");
        assert_eq!(url_cell("https://x/@all"), "https://x/%40all", "no mention from a link either");
    }
}
