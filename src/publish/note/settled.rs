//! The statuses whose final state the note already knows, carried in the note itself, so that a
//! writer reads only the statuses that can still change: in a pipeline of 1,000 steps, a render
//! reads the newest page or two of statuses instead of ten (docs/benchmarks.md, "Scale").
//!
//! Why it is safe to take them from the note, when the rest of the note never is (mod.rs, rule 1):
//! - A commit status in a final state never changes. Posting to its name again makes a new status
//!   with a new id and marks the old one retried (gitlab.md §A.1), and that new one is read fresh.
//! - GitLab creates the statuses of one commit one at a time (an exclusive lease per project and
//!   SHA, §A.1), so ids appear in order: a status not seen yet will have a higher id than every
//!   status seen now.
//!
//! So a writer that read every herald status of the pipeline records `below`: the lowest id among
//! them that is not final yet (or one past the highest). Every herald status with a lower id was
//! final, is final forever, and is listed in the block. A later writer takes those from the note
//! and reads the rest newest first, down to `below`; it renders exactly what a full read would
//! have given. Anything unexpected in the block (another pipeline or prefix, a row that is not
//! final, text that does not parse) and the writer reads everything, as before.
//!
//! The block is an HTML comment at the end of the note, so GitLab shows nothing of it: one line
//! of JSON for the header, one per status, with `<`, `>`, `&` and `@` written as JSON escapes so
//! that no text from a name can end the comment or mention anyone.

use serde::{Deserialize, Serialize};

use crate::gitlab::CommitStatus;

const BLOCK_START: &str = "<!-- herald:settled ";
const BLOCK_END: &str = "-->";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    pipeline: u64,
    prefix: String,
    below: u64,
}

/// One status as the block keeps it: id, state, name, description, target_url.
type Line = (u64, String, String, Option<String>, Option<String>);

/// Herald's statuses below `below`, all final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub below: u64,
    pub rows: Vec<CommitStatus>,
}

/// GitLab's final states for a commit status: a status in one of them never changes again.
pub fn is_final(status: &CommitStatus) -> bool {
    matches!(status.status.as_str(), "success" | "failed" | "canceled" | "skipped")
}

impl Settled {
    /// Nothing known: every status is read.
    pub fn nothing() -> Settled {
        Settled { below: 0, rows: Vec::new() }
    }

    /// What `statuses` (every herald status of the pipeline, as one writer sees them) settle:
    /// those below the lowest one that can still change.
    pub fn of(statuses: &[CommitStatus], prefix: &str) -> Settled {
        let own_prefix = format!("{prefix}/");
        let mut ours: Vec<&CommitStatus> = statuses.iter().filter(|s| s.name.starts_with(&own_prefix)).collect();
        ours.sort_by_key(|status| status.id);
        let open = ours.iter().find(|status| !is_final(status)).map(|status| status.id);
        let below = open.or_else(|| ours.last().map(|status| status.id + 1)).unwrap_or(0);
        let rows = ours.into_iter().filter(|status| status.id < below).cloned().collect();
        Settled { below, rows }
    }

    /// The block in a note body, when it is this pipeline's and this prefix's and holds together;
    /// otherwise nothing is known.
    pub fn from_note(body: &str, pipeline_id: u64, prefix: &str) -> Settled {
        Self::parse(body, pipeline_id, prefix).unwrap_or_else(Settled::nothing)
    }

    fn parse(body: &str, pipeline_id: u64, prefix: &str) -> Option<Settled> {
        let start = body.find(&format!("\n{BLOCK_START}"))? + 1;
        let mut lines = body[start + BLOCK_START.len()..].lines();
        let header: Header = serde_json::from_str(lines.next()?).ok()?;
        if header.pipeline != pipeline_id || header.prefix != prefix {
            return None;
        }
        let own_prefix = format!("{prefix}/");
        let mut rows: Vec<CommitStatus> = Vec::new();
        for line in lines {
            if line == BLOCK_END {
                let settled = Settled { below: header.below, rows };
                let in_order = settled.rows.windows(2).all(|pair| pair[0].id < pair[1].id);
                let sound =
                    settled.rows.iter().all(|s| s.id < settled.below && is_final(s) && s.name.starts_with(&own_prefix));
                return (in_order && sound).then_some(settled);
            }
            let (id, status, name, description, target_url): Line = serde_json::from_str(line).ok()?;
            rows.push(CommitStatus {
                id,
                name,
                status,
                description,
                target_url,
                pipeline_id: Some(pipeline_id),
                author: None,
                started_at: None,
                finished_at: None,
            });
        }
        None // never closed: cut short
    }

    /// The note's text without herald's hidden blocks: what readers see.
    pub fn visible(body: &str) -> &str {
        let settled = body.find(&format!("\n{BLOCK_START}"));
        let carried = super::carried::hidden_start(body);
        match settled.into_iter().chain(carried).min() {
            Some(at) => &body[..at],
            None => body,
        }
    }

    /// The statuses now: these settled ones, and `fresh` ones read down to `below` (newer data for
    /// any id both have). A settled status whose name a fresh one has was retried since: the
    /// newer one stands.
    pub fn merge(&self, fresh: Vec<CommitStatus>) -> Vec<CommitStatus> {
        let mut all = fresh;
        all.sort_by_key(|status| status.id);
        all.dedup_by_key(|status| status.id);
        for row in &self.rows {
            if all.binary_search_by_key(&row.id, |status| status.id).is_err() {
                all.push(row.clone());
            }
        }
        all.sort_by(|a, b| a.name.cmp(&b.name).then(b.id.cmp(&a.id)));
        all.dedup_by(|later, first| later.name == first.name);
        all.sort_by_key(|status| status.id);
        all
    }

    /// The block for a note, at most `room` bytes: when the statuses do not fit, the newest are
    /// left out and `below` drops to the first of them (they are read again next time).
    pub fn block(&self, pipeline_id: u64, prefix: &str, room: usize) -> String {
        let encode = |json: String| {
            json.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026").replace('@', "\\u0040")
        };
        let mut lines = Vec::with_capacity(self.rows.len());
        let mut size = 200 + prefix.len();
        let mut below = self.below;
        for row in &self.rows {
            let line: Line =
                (row.id, row.status.clone(), row.name.clone(), row.description.clone(), row.target_url.clone());
            let line = encode(serde_json::to_string(&line).unwrap_or_default());
            size += line.len() + 1;
            if size > room {
                below = row.id;
                break;
            }
            lines.push(line);
        }
        if below == 0 || room < 200 + prefix.len() {
            return String::new();
        }
        let header = Header { pipeline: pipeline_id, prefix: prefix.to_owned(), below };
        let header = encode(serde_json::to_string(&header).unwrap_or_default());
        format!("{BLOCK_START}{header}\n{}{}{BLOCK_END}\n", lines.join("\n"), if lines.is_empty() { "" } else { "\n" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: u64, name: &str, state: &str) -> CommitStatus {
        CommitStatus {
            id,
            name: name.into(),
            status: state.into(),
            description: Some(format!("{state} -->\n<b>@all</b> & \"x\"")),
            target_url: Some(format!("https://gitlab.example.com/g/p/-/jobs/{id}")),
            pipeline_id: Some(9),
            author: None,
            started_at: None,
            finished_at: None,
        }
    }

    fn note_with(block: &str) -> String {
        format!("<!-- herald:note pipeline=9 -->\n## table\n\n{block}")
    }

    #[test]
    fn settles_below_the_first_status_that_can_change() {
        let statuses = [
            status(3, "herald/a › x", "success"),
            status(5, "herald/b › y", "running"),
            status(4, "other/tool", "running"),
            status(7, "herald/c › z", "failed"),
        ];
        let settled = Settled::of(&statuses, "herald");
        assert_eq!(settled.below, 5);
        assert_eq!(settled.rows.iter().map(|s| s.id).collect::<Vec<_>>(), [3], "not other tools' statuses");
        let all_final = Settled::of(&[status(3, "herald/a", "success"), status(8, "herald/b", "canceled")], "herald");
        assert_eq!(all_final.below, 9, "one past the newest");
        assert_eq!(Settled::of(&[], "herald"), Settled::nothing());
    }

    #[test]
    fn the_block_round_trips_and_hides_hostile_text() {
        let statuses = [status(3, "herald/a › -->@all<script>", "success"), status(4, "herald/b", "failed")];
        let settled = Settled::of(&statuses, "herald");
        let block = settled.block(9, "herald", 100_000);
        assert!(!block[3..block.len() - 4].contains("-->"), "nothing ends the comment early: {block}");
        assert!(!block.contains('@') && !block.contains("<s"), "{block}");
        assert!(block.lines().all(|line| !line.starts_with('/')));
        let body = note_with(&block);
        assert_eq!(Settled::from_note(&body, 9, "herald"), Settled { below: 5, rows: settled.rows.clone() });
        assert_eq!(Settled::visible(&body), "<!-- herald:note pipeline=9 -->\n## table\n");
    }

    #[test]
    fn anything_unexpected_means_nothing_is_known() {
        let block = Settled::of(&[status(3, "herald/a", "success")], "herald").block(9, "herald", 100_000);
        let body = note_with(&block);
        assert_eq!(Settled::from_note(&body, 10, "herald"), Settled::nothing(), "another pipeline");
        assert_eq!(Settled::from_note(&body, 9, "ci"), Settled::nothing(), "another prefix");
        assert_eq!(Settled::from_note(&body.replace("\"success\"", "\"running\""), 9, "herald"), Settled::nothing());
        assert_eq!(Settled::from_note(&body.replace("\"below\":4", "\"below\":3"), 9, "herald"), Settled::nothing());
        assert_eq!(Settled::from_note(&body[..body.len() - 5], 9, "herald"), Settled::nothing(), "cut short");
        assert_eq!(Settled::from_note("<!-- herald:note pipeline=9 -->\n", 9, "herald"), Settled::nothing());
    }

    #[test]
    fn a_block_too_big_keeps_the_oldest_and_lowers_below() {
        let statuses: Vec<CommitStatus> =
            (1..=50).map(|id| status(id, &format!("herald/job{id}"), "success")).collect();
        let settled = Settled::of(&statuses, "herald");
        let block = settled.block(9, "herald", 2_000);
        assert!(block.len() <= 2_000, "{}", block.len());
        let back = Settled::from_note(&note_with(&block), 9, "herald");
        assert!(back.below < 51 && back.below > 1, "below {}", back.below);
        assert_eq!(back.rows.len() as u64, back.below - 1, "every status below `below` is listed");
        assert_eq!(Settled::of(&statuses, "herald").block(9, "herald", 10), "", "no room at all");
    }

    #[test]
    fn merging_prefers_fresh_rows_and_retries() {
        let settled = Settled::of(&[status(3, "herald/a", "success"), status(4, "herald/b", "failed")], "herald");
        // b was posted again (a new status, 9), a newer step runs (8), and 3 was read again too.
        let fresh =
            vec![status(9, "herald/b", "running"), status(8, "herald/c", "running"), status(3, "herald/a", "success")];
        let merged = settled.merge(fresh);
        let seen: Vec<(u64, &str)> = merged.iter().map(|s| (s.id, s.status.as_str())).collect();
        assert_eq!(seen, [(3, "success"), (8, "running"), (9, "running")]);
    }
}
