//! "Needs attention": failed steps with their excerpts (identical ones shown once), then running,
//! retrying, allowed-to-fail and canceled steps, within the visible budget; and a step's line as
//! every list shows it.

use super::header::comparison;
use super::*;

/// Every failed step: the first ones with their excerpt, identical excerpts once, then one line
/// each while the budget lasts; the rest fold.
pub(super) fn failures<'e>(entries: &'e [Entry<'e>], visible: &mut Visible<'e>) {
    let failed: Vec<&Entry> = entries.iter().filter(|e| e.state == StepState::Failed).collect();
    if failed.is_empty() {
        return;
    }
    if !visible.fits("\n#### ❌ Failed\n") {
        visible.folded.extend(failed);
        return;
    }
    // Failures with the same excerpt (numbers aside: thread ids, timings) are shown once.
    let mut groups: Vec<(String, Vec<&Entry>)> = Vec::new();
    for entry in &failed {
        let key =
            if entry.excerpt.is_empty() { format!("\u{0}{}", groups.len()) } else { same_failure_key(entry.excerpt) };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(entry),
            None => groups.push((key, vec![entry])),
        }
    }
    let mut excerpts_shown = 0;
    for (_, members) in &groups {
        let first = members[0];
        let mut block = format!("\n{}\n", step_line(first, true));
        let budget = if excerpts_shown == 0 { FIRST_EXCERPT_LINES } else { OTHER_EXCERPT_LINES };
        if !first.excerpt.is_empty() {
            block.push_str(&excerpt_block(first.excerpt, budget));
        }
        if members.len() > 1 {
            let others: Vec<String> = members[1..].iter().take(5).map(|e| job_link(e.job)).collect();
            let more = members.len() - 1 - others.len();
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            let _ = writeln!(block, "Same failure in {}{more}.", others.join(", "));
        }
        if visible.fits(&block) {
            excerpts_shown += 1;
            continue;
        }
        // No room for the excerpt: the failure's own line, if that fits.
        let line = format!("- {}\n", step_line(first, false));
        if visible.fits(&line) {
            visible.folded.extend(&members[1..]);
        } else {
            visible.folded.extend(members.iter().copied());
        }
    }
}

/// A key equal for two excerpts that differ only in numbers (thread ids, timings, line counts).
fn same_failure_key(excerpt: &[String]) -> String {
    excerpt.iter().flat_map(|line| line.chars().filter(|c| !c.is_ascii_digit())).collect()
}

/// The excerpt in a block a phone can scroll: `<pre>` with the text escaped, so nothing in it can
/// end the block, open a tag or mention anyone.
pub(super) fn excerpt_block(excerpt: &[String], max_lines: usize) -> String {
    let mut text = String::from("<pre>");
    let shown = &excerpt[..excerpt.len().min(max_lines)];
    for (i, line) in shown.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        let escaped = pre_text(line);
        // A line of the block starting with `/` would still look like a quick action.
        if escaped.trim_start().starts_with('/') {
            text.push('\u{200b}');
        }
        text.push_str(&escaped);
    }
    if excerpt.len() > shown.len() {
        text.push_str("\n…");
    }
    text.push_str("</pre>\n");
    text
}

/// Running, allowed and canceled steps: one line each while the budget lasts.
pub(super) fn listing<'e>(entries: &'e [Entry<'e>], state: StepState, title: &str, visible: &mut Visible<'e>) {
    let listed: Vec<&Entry> = entries.iter().filter(|e| e.state == state).collect();
    if listed.is_empty() {
        return;
    }
    if !visible.fits(&format!("\n#### {title}\n")) {
        visible.folded.extend(listed);
        return;
    }
    for (i, entry) in listed.iter().enumerate() {
        let remaining = listed.len() - i;
        // Keep a line free to say how many more there are.
        let room_for_more = remaining == 1 || visible.lines + 2 <= VISIBLE_LINES;
        if room_for_more && visible.fits(&format!("- {}\n", step_line(entry, false))) {
            continue;
        }
        let _ = visible.fits(&format!("- … and {remaining} more, below\n"));
        visible.folded.extend(&listed[i..]);
        return;
    }
}

/// `❌ [job](url) › step — failed (exit 2) after 4.1s · log`; running steps say since when.
pub(super) fn step_line(entry: &Entry, bold: bool) -> String {
    let job = match entry.job {
        Some(job) => format!("{} › ", job_link(Some(job))),
        None => String::new(),
    };
    let name = cell(&entry.name);
    let subject = if bold { format!("**{job}{name}**") } else { format!("{job}{name}") };
    let mut result = cell(&entry.result);
    if let (StepState::Running, Some(started)) = (entry.state, entry.started_at) {
        result = format!("running since {}", clock(started));
    }
    let log = match (entry.state, entry.job.and_then(|job| job.web_url.as_deref())) {
        (StepState::Failed | StepState::Canceled | StepState::Allowed, Some(url)) => {
            format!(" · [log]({})", url_cell(url))
        }
        _ => String::new(),
    };
    let compared = match entry.state {
        StepState::Failed => comparison(entry.on_target, entry.baseline),
        _ => String::new(),
    };
    format!("{} {subject} — {result}{log}{compared}", entry.state.icon())
}

pub(super) fn job_link(job: Option<&JobView>) -> String {
    match job {
        Some(job) => match &job.web_url {
            Some(url) => format!("[{}]({})", cell(&job.name), url_cell(url)),
            None => cell(&job.name),
        },
        None => "—".into(),
    }
}
