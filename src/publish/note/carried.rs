//! What a note carries for its next writer besides the settled statuses (settled.rs), in one
//! hidden line: things that cost a request to learn and do not change once learned, so that only
//! the first writer that needs them pays.
//!
//! - **Failure excerpts**, by status id: taken from the job log GitLab holds, once the step's
//!   section there is complete (or its job is over). A final status never changes and neither does
//!   a complete section of a log, so later writers reuse the excerpt instead of reading the log
//!   again (gitlab.md §K: logs can be megabytes).
//! - **The merge request's earlier pipelines**, read when the note starts showing this pipeline.
//!   An earlier pipeline still running then may end later: `herald note` (the pipeline's last word)
//!   reads them again, so the note ends right.
//! - **The baseline** (publish/baseline.rs): the target branch's pipeline the failures are
//!   compared with, read once per pipeline by the writer that first renders the note; a finished
//!   pipeline never changes, so even `herald note` keeps it. `baseline_read` with no baseline: there
//!   is none (or it could not be read in time), and nobody asks again.
//!
//! Like the settled block, it is an HTML comment (GitLab shows nothing of it) of JSON with `<`,
//! `>`, `&` and `@` escaped, and anything unexpected in it means nothing is known.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::publish::baseline::Baseline;
use crate::report::note::PastPipeline;

const BLOCK_START: &str = "<!-- herald:carried ";
const BLOCK_END: &str = " -->";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Carried {
    pipeline: u64,
    /// Earlier pipelines of the merge request, oldest first: (id, status, web URL). None: not
    /// read yet.
    #[serde(default)]
    history: Option<Vec<(u64, String, Option<String>)>>,
    /// Failure excerpts by status id.
    #[serde(default)]
    excerpts: BTreeMap<u64, Vec<String>>,
    /// Whether the baseline was read (or given up on): then `baseline` is all there is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    baseline_read: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    baseline: Option<Baseline>,
    /// Step summaries (report/summary.rs) by status name: put in by the step's own job (job
    /// memory), carried on by every other writer.
    #[serde(default)]
    summaries: BTreeMap<String, String>,
}

impl Carried {
    pub fn new(pipeline: u64) -> Carried {
        Carried { pipeline, ..Carried::default() }
    }

    /// The block in a note body, when it is this pipeline's and parses; else nothing is known.
    pub fn from_note(body: &str, pipeline: u64) -> Carried {
        let parsed = body.find(&format!("\n{BLOCK_START}")).and_then(|at| {
            let rest = &body[at + 1 + BLOCK_START.len()..];
            let json = &rest[..rest.find(BLOCK_END)?];
            serde_json::from_str::<Carried>(json).ok()
        });
        parsed.filter(|carried| carried.pipeline == pipeline).unwrap_or_else(|| Carried::new(pipeline))
    }

    pub fn history(&self) -> Option<Vec<PastPipeline>> {
        self.history.as_ref().map(|history| {
            history
                .iter()
                .map(|(id, status, web_url)| PastPipeline { id: *id, status: status.clone(), web_url: web_url.clone() })
                .collect()
        })
    }

    pub fn set_history(&mut self, history: &[PastPipeline]) {
        self.history = Some(history.iter().map(|past| (past.id, past.status.clone(), past.web_url.clone())).collect());
    }

    /// The baseline: Some(None) when read and there is none, None when not read yet.
    pub fn baseline(&self) -> Option<Option<&Baseline>> {
        self.baseline_read.then_some(self.baseline.as_ref())
    }

    pub fn set_baseline(&mut self, baseline: Option<Baseline>) {
        self.baseline_read = true;
        self.baseline = baseline;
    }

    pub fn excerpt(&self, status_id: u64) -> Option<&Vec<String>> {
        self.excerpts.get(&status_id)
    }

    pub fn keep_excerpt(&mut self, status_id: u64, excerpt: Vec<String>) {
        self.excerpts.insert(status_id, excerpt);
    }

    /// Forgets excerpts of statuses no longer in the pipeline's latest ones (retried steps).
    pub fn retain_excerpts(&mut self, wanted: impl Fn(u64) -> bool) {
        self.excerpts.retain(|id, _| wanted(*id));
    }

    pub fn summaries(&self) -> &BTreeMap<String, String> {
        &self.summaries
    }

    /// The summary the status `name`'s step wrote (None: it wrote none, or none is known).
    pub fn keep_summary(&mut self, name: &str, summary: Option<String>) {
        match summary {
            Some(text) => self.summaries.insert(name.to_owned(), text),
            None => self.summaries.remove(name),
        };
    }

    /// Forgets summaries of statuses no longer among the pipeline's.
    pub fn retain_summaries(&mut self, wanted: impl Fn(&str) -> bool) {
        self.summaries.retain(|name, _| wanted(name));
    }

    /// The block for a note, at most `room` bytes (excerpts left out first when it does not fit,
    /// then summaries).
    pub fn block(&self, room: usize) -> String {
        let encode = |json: String| {
            json.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026").replace('@', "\\u0040")
        };
        let mut carried = self.clone();
        // Summaries beyond twice what a note shows of them (report/summary.rs NOTE_BUDGET) are
        // kept as known but empty, the largest first: never shown whole anyway, and not read again
        // from the job log (the mark says there is one) by every later writer.
        let room_for_summaries = 2 * crate::report::summary::NOTE_BUDGET;
        let mut total: usize = carried.summaries.values().map(String::len).sum();
        while total > room_for_summaries {
            let Some(largest) = carried.summaries.values_mut().max_by_key(|text| text.len()) else { break };
            total -= largest.len();
            largest.clear();
        }
        loop {
            let line =
                format!("{BLOCK_START}{}{BLOCK_END}\n", encode(serde_json::to_string(&carried).unwrap_or_default()));
            if line.len() <= room {
                return line;
            }
            if let Some(newest) = carried.excerpts.keys().next_back().copied() {
                carried.excerpts.remove(&newest);
                continue;
            }
            if let Some(last) = carried.summaries.keys().next_back().cloned() {
                carried.summaries.remove(&last);
                continue;
            }
            // Then the baseline: without it, no comparison (and nobody reads it again).
            if carried.baseline.take().is_none() {
                return String::new();
            }
        }
    }
}

/// Where herald's hidden blocks begin in a note body: what comes before is what readers see.
pub fn hidden_start(body: &str) -> Option<usize> {
    body.find(&format!("\n{BLOCK_START}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_round_trips_and_hides_hostile_text() {
        let mut carried = Carried::new(7);
        carried.set_history(&[PastPipeline {
            id: 5,
            status: "failed".into(),
            web_url: Some("https://x/-/pipelines/5".into()),
        }]);
        carried.keep_excerpt(41, vec!["--> <b>@all</b> & \"quoted\"".into(), "/merge".into()]);
        carried.keep_summary("herald/plan", Some("# Plan\n--> <!-- herald:note pipeline=9 --> @all\n/merge".into()));
        let block = carried.block(10_000);
        assert!(!block[4..block.len() - 5].contains("-->") && !block.contains('@') && !block.contains("<b"), "{block}");
        let body = format!("<!-- herald:note pipeline=7 -->\nvisible\n{block}");
        assert_eq!(Carried::from_note(&body, 7), carried);
        assert_eq!(Carried::from_note(&body, 8), Carried::new(8), "another pipeline's");
        assert_eq!(hidden_start(&body), Some("<!-- herald:note pipeline=7 -->\nvisible".len()));
        assert_eq!(Carried::from_note(&body.replace("\"pipeline\"", "\"pipe\""), 7), Carried::new(7));
    }

    #[test]
    fn the_baseline_round_trips_and_none_is_remembered() {
        let mut carried = Carried::new(7);
        assert_eq!(carried.baseline(), None, "not read yet");
        carried.set_baseline(None);
        let body = format!("<!-- herald:note pipeline=7 -->\nvisible\n{}", carried.block(10_000));
        assert_eq!(Carried::from_note(&body, 7).baseline(), Some(None), "read: there is none");
        let baseline = Baseline { branch: "main".into(), pipeline: 5, ..Baseline::default() };
        carried.set_baseline(Some(baseline.clone()));
        let body = format!("<!-- herald:note pipeline=7 -->\nvisible\n{}", carried.block(10_000));
        assert_eq!(Carried::from_note(&body, 7).baseline(), Some(Some(&baseline)));
    }

    #[test]
    fn summaries_past_their_room_are_kept_as_known_but_empty() {
        let mut carried = Carried::new(7);
        for i in 0..40 {
            carried.keep_summary(&format!("herald/job {i}"), Some("s".repeat(8 * 1024)));
        }
        let block = carried.block(1_000_000);
        let back = Carried::from_note(&format!("<!-- herald:note pipeline=7 -->\n{block}"), 7);
        assert_eq!(back.summaries().len(), 40, "every summary is still known");
        let kept: usize = back.summaries().values().map(String::len).sum();
        assert!(kept <= 2 * crate::report::summary::NOTE_BUDGET, "{kept} bytes");
    }

    #[test]
    fn excerpts_give_way_when_there_is_no_room() {
        let mut carried = Carried::new(7);
        carried.keep_excerpt(1, vec!["x".repeat(100)]);
        carried.keep_excerpt(2, vec!["y".repeat(100)]);
        let block = carried.block(200);
        assert!(block.len() <= 200 && block.contains("xxx") && !block.contains("yyy"), "{block}");
    }
}
