//! The two kinds of path patterns in a GitLab configuration, matched as GitLab matches them and in
//! time that grows with the pattern's length times the path's, never exponentially:
//!
//! - `local:` include globs (gitlab.md §I.1). GitLab turns the glob into an anchored RE2 regex
//!   (`Repository#search_files_by_wildcard_path`: `**` is `.*?`, `*` is `[^/]*?`, everything else
//!   literal), so `configs/*.yml` stays in one folder and `configs/**.yml` crosses folders.
//!   `include_glob` runs the same language as a set of pattern positions advanced one path
//!   character at a time (no backtracking).
//! - `rules: exists` patterns (gitlab.md §M): Ruby's
//!   `File.fnmatch?(pattern, path, File::FNM_PATHNAME | File::FNM_DOTMATCH | File::FNM_EXTGLOB)`.
//!   `fnmatch` is a port of Ruby's own algorithm (dir.c: `ruby_brace_expand`, `fnmatch`,
//!   `fnmatch_helper`, `bracket`), so its corner cases are Ruby's by construction: `*` `?` `[set]`
//!   never match `/`, `**/` at a folder's start matches any number of folders, `{a,b}` is expanded
//!   first (an unbalanced `{` matches nothing), `\` escapes, `[]` matches nothing and `[!]` any
//!   character. Ruby keeps one backtracking point per `*` run and one per `**/`, so a match costs
//!   at most (pattern length × path length) steps per folder, not the exponential time of a
//!   recursive matcher.
//!
//! Brace expansion is bounded too (issue #26 found it was not): every pattern it makes, and every
//! unbalanced `{`'s empty result, counts toward `MOST_ALTERNATIVES`, so `{a,b}` × 30 followed by a
//! lone `{` stops after about a thousand patterns instead of making 2^30 into nothing; it recurses
//! at most `MOST_BRACE_GROUPS` deep (the stack) and goes through at most `MOST_EXPANDED_CHARS`
//! characters (memory). `exists` expands each pattern once, not once per file. The tests count
//! steps (`Budget`), never time.
//!
//! Limits of herald's own, since Ruby has none: those three, and one `rules: exists` clause may
//! spend at most `STEP_BUDGET` matching steps. Past any of them, the answer is "cannot say" and
//! the rule is kept undecided (the include or job is kept), never a guess.
//!
//! **Decision (issue #26): no glob crate; these two matchers stay, hand-written and linear.**
//! - `rules: exists` needs Ruby's `fnmatch` exactly. `globset` (the well-kept one, linear: it
//!   compiles to a regex) differs where configurations go: its `*` crosses `/` unless told
//!   otherwise; nested braces (`{a,{b,c}}`), an unclosed `{` and a backwards range (`[z-a]`) are
//!   errors, where Ruby expands, matches nothing and matches the two ends; and `[!]`, `[]` follow
//!   other rules. `glob` (rust-lang) has no braces. Making either agree would take a translation
//!   layer as long as Ruby's algorithm (80 lines, here), still differing in corners the tests pin
//!   (`fnmatch_is_rubys`, answers taken from Ruby).
//! - `local:` include globs are not a glob language at all but GitLab's regex translation. The
//!   `regex` crate (already a dependency, linear time) could run that translation literally; the
//!   40-line automaton here is the same language with the same bound and no regex size limits or
//!   compile errors to turn into messages, so it stays.

/// Most patterns `{a,b}` alternatives may expand to.
pub const MOST_ALTERNATIVES: usize = 1024;
/// Most brace groups expanded one inside another's result (`{a}{b}` is two, `{a,{b,c}}` two).
pub const MOST_BRACE_GROUPS: usize = 64;
/// Most characters brace expansion may go through, all patterns it makes together: 1,024
/// alternatives of a 4 MB pattern would be 4 GB.
pub const MOST_EXPANDED_CHARS: usize = 1 << 22;
/// Most matching steps one `rules: exists` clause may take.
pub const STEP_BUDGET: usize = 5_000_000;

/// Matching steps left; `spend` fails when they are used up.
#[derive(Debug)]
pub struct Budget {
    left: usize,
    spent: usize,
}

impl Budget {
    pub fn new(steps: usize) -> Budget {
        Budget { left: steps, spent: 0 }
    }

    /// Steps used so far.
    #[cfg(test)]
    pub fn spent(&self) -> usize {
        self.spent
    }

    fn spend(&mut self) -> Option<()> {
        self.left = self.left.checked_sub(1)?;
        self.spent += 1;
        Some(())
    }
}

/// A `local:` include glob against one path: GitLab's regex, `**` any text, `*` any text without
/// `/`, anchored at both ends.
pub fn include_glob(pattern: &str, path: &str) -> bool {
    include_glob_counted(pattern, path, &mut Budget::new(usize::MAX)).unwrap_or(false)
}

#[derive(Clone, Copy, PartialEq)]
enum Token {
    Char(char),
    /// `*`: any text within a folder.
    Star,
    /// `**`: any text.
    AnyStar,
}

/// `include_glob`, spending one step per live pattern position per path character.
pub fn include_glob_counted(pattern: &str, path: &str, budget: &mut Budget) -> Option<bool> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match (chars[i], chars.get(i + 1)) {
            ('*', Some('*')) => (tokens.push(Token::AnyStar), i += 2).1,
            ('*', _) => (tokens.push(Token::Star), i += 1).1,
            (c, _) => (tokens.push(Token::Char(c)), i += 1).1,
        }
    }
    // live[k]: the first k tokens match the path read so far.
    let close = |live: &mut Vec<bool>| {
        for k in 0..tokens.len() {
            if live[k] && matches!(tokens[k], Token::Star | Token::AnyStar) {
                live[k + 1] = true;
            }
        }
    };
    let mut live = vec![false; tokens.len() + 1];
    live[0] = true;
    close(&mut live);
    for c in path.chars() {
        let mut next = vec![false; tokens.len() + 1];
        for k in (0..tokens.len()).filter(|k| live[*k]) {
            budget.spend()?;
            match tokens[k] {
                Token::Char(want) if want == c => next[k + 1] = true,
                Token::Char(_) => {}
                Token::Star if c == '/' => {}
                Token::Star | Token::AnyStar => next[k] = true,
            }
        }
        close(&mut next);
        if !next.contains(&true) {
            return Some(false);
        }
        live = next;
    }
    Some(live[tokens.len()])
}

/// Ruby's `File.fnmatch?` with `FNM_PATHNAME | FNM_DOTMATCH | FNM_EXTGLOB`; None when the braces
/// expand to more than herald's limits allow or the budget runs out. One pattern, one path: the
/// tests' form (`exists` expands a pattern once for all files, `Glob`).
#[cfg(test)]
pub fn fnmatch(pattern: &str, path: &str, budget: &mut Budget) -> Option<bool> {
    Glob::new(pattern)?.matches(path, budget)
}

/// A `fnmatch` pattern with its braces expanded, once for all the paths it is matched with.
pub struct Glob(Vec<Vec<char>>);

impl Glob {
    /// None past herald's limits on brace expansion (module doc).
    pub fn new(pattern: &str) -> Option<Glob> {
        Some(Glob(braces(pattern)?.iter().map(|alternative| alternative.chars().collect()).collect()))
    }

    pub fn matches(&self, path: &str, budget: &mut Budget) -> Option<bool> {
        let path: Vec<char> = path.chars().collect();
        for alternative in &self.0 {
            if path_match(alternative, &path, budget)? {
                return Some(true);
            }
        }
        Some(false)
    }
}

/// The patterns `{a,b}` alternatives stand for, as Ruby's `ruby_brace_expand` makes them: the
/// first outermost balanced group is expanded, then each result again. A `{` without its `}`
/// gives no pattern at all (Ruby then matches nothing). None past `MOST_ALTERNATIVES` results or
/// `MOST_BRACE_GROUPS` groups expanded one inside another's result.
pub fn braces(pattern: &str) -> Option<Vec<String>> {
    braces_counted(pattern, &mut Budget::new(usize::MAX))
}

/// `braces`, spending one step per pattern expanded (each scans the pattern once). Every expanded
/// pattern lies on the way to a result (a pattern, or an unbalanced `{`'s nothing) at most
/// `MOST_BRACE_GROUPS` groups deep, and the results are counted, so the steps are at most
/// (`MOST_ALTERNATIVES` + 1) × (groups + 1), never 2^groups.
pub fn braces_counted(pattern: &str, budget: &mut Budget) -> Option<Vec<String>> {
    let mut expansion = Expansion { out: Vec::new(), results: 0, chars: 0, budget };
    expansion.expand(pattern.chars().collect(), 0)?;
    Some(expansion.out)
}

struct Expansion<'b> {
    out: Vec<String>,
    /// Results so far, the empty ones of an unbalanced `{` included: without counting those,
    /// `{a,b}` × 30 followed by a lone `{` would expand 2^30 patterns into nothing.
    results: usize,
    /// Characters of the patterns expanded so far.
    chars: usize,
    budget: &'b mut Budget,
}

impl Expansion<'_> {
    fn expand(&mut self, chars: Vec<char>, depth: usize) -> Option<()> {
        self.budget.spend()?;
        // Each level is a stack frame: `{a}` × 100,000 must not overflow the stack.
        self.chars += chars.len();
        if depth > MOST_BRACE_GROUPS || self.chars > MOST_EXPANDED_CHARS {
            return None;
        }
        let (open, close) = match first_group(&chars) {
            (Some(open), Some(close)) => (open, close),
            (open, _) => {
                self.results += 1;
                if self.results > MOST_ALTERNATIVES {
                    return None;
                }
                // No group: the pattern itself; a `{` without its `}`: nothing.
                if open.is_none() {
                    self.out.push(chars.into_iter().collect());
                }
                return Some(());
            }
        };
        let mut p = open;
        while p < close {
            p += 1;
            let start = p;
            let mut nest = 0isize;
            while p < close && !(chars[p] == ',' && nest == 0) {
                match chars[p] {
                    '{' => nest += 1,
                    '}' => nest -= 1,
                    '\\' => {
                        p += 1;
                        if p == close {
                            break;
                        }
                    }
                    _ => {}
                }
                p += 1;
            }
            let alternative = [&chars[..open], &chars[start..p.min(close)], &chars[close + 1..]].concat();
            self.expand(alternative, depth + 1)?;
        }
        Some(())
    }
}

/// Where the first outermost `{…}` group opens and closes (`\\` escapes the next character); an
/// open without a close when its `}` is missing.
fn first_group(chars: &[char]) -> (Option<usize>, Option<usize>) {
    let (mut nest, mut open) = (0usize, None);
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '{' => {
                if nest == 0 {
                    open = Some(i);
                }
                nest += 1;
            }
            '}' if open.is_some() => {
                nest -= 1;
                if nest == 0 {
                    return (open, Some(i));
                }
            }
            '\\' => {
                i += 1;
                if i >= chars.len() {
                    break;
                }
            }
            _ => {}
        }
        i += 1;
    }
    (open, None)
}

/// The end of a folder name (or of the text), as Ruby's `ISEND` with `FNM_PATHNAME`.
fn at_end(text: &[char], at: usize) -> bool {
    text.get(at).is_none_or(|c| *c == '/')
}

/// Past a `\`, as Ruby's `UNESCAPE`.
fn unescape(pattern: &[char], at: usize) -> usize {
    if pattern.get(at) == Some(&'\\') {
        at + 1
    } else {
        at
    }
}

/// Ruby's `fnmatch` with `FNM_PATHNAME`: folder by folder, `**/` remembered as the one place to
/// retry from, one folder further each time.
fn path_match(p: &[char], s: &[char], budget: &mut Budget) -> Option<bool> {
    let starts_any_folders = |at: usize| p.get(at..at + 3) == Some(&['*', '*', '/'][..]);
    let (mut pi, mut si) = (0, 0);
    let mut retry: Option<(usize, usize)> = None;
    loop {
        budget.spend()?;
        if starts_any_folders(pi) {
            while starts_any_folders(pi) {
                pi += 3;
            }
            retry = Some((pi, si));
        }
        let (mut pj, mut sj) = (pi, si);
        if folder_match(p, &mut pj, s, &mut sj, budget)? {
            while sj < s.len() && s[sj] != '/' {
                sj += 1;
            }
            if pj < p.len() && sj < s.len() {
                (pi, si) = (pj + 1, sj + 1);
                continue;
            }
            if pj >= p.len() && sj >= s.len() {
                return Some(true);
            }
        }
        let Some((retry_p, mut retry_s)) = retry else { return Some(false) };
        while retry_s < s.len() && s[retry_s] != '/' {
            budget.spend()?;
            retry_s += 1;
        }
        if retry_s >= s.len() {
            return Some(false);
        }
        retry = Some((retry_p, retry_s + 1));
        (pi, si) = (retry_p, retry_s + 1);
    }
}

/// Ruby's `fnmatch_helper`: one folder name of the path against the pattern from `*pi`, leaving
/// both positions where it stopped. A run of `*` is the one place to retry from, one character
/// further each time.
fn folder_match(p: &[char], pi: &mut usize, s: &[char], si: &mut usize, budget: &mut Budget) -> Option<bool> {
    let mut retry: Option<(usize, usize)> = None;
    loop {
        budget.spend()?;
        let advanced = match p.get(*pi) {
            Some('*') => {
                while p.get(*pi) == Some(&'*') {
                    *pi += 1;
                }
                if at_end(p, unescape(p, *pi)) {
                    *pi = unescape(p, *pi);
                    return Some(true);
                }
                if at_end(s, *si) {
                    return Some(false);
                }
                retry = Some((*pi, *si));
                continue;
            }
            Some('?') => {
                if at_end(s, *si) {
                    return Some(false);
                }
                *pi += 1;
                *si += 1;
                true
            }
            Some('[') => {
                if at_end(s, *si) {
                    return Some(false);
                }
                match bracket(p, *pi + 1, s[*si]) {
                    Some(after) => {
                        *pi = after;
                        *si += 1;
                        true
                    }
                    None => false,
                }
            }
            _ => {
                *pi = unescape(p, *pi);
                if at_end(s, *si) {
                    return Some(at_end(p, *pi));
                }
                if !at_end(p, *pi) && p[*pi] == s[*si] {
                    *pi += 1;
                    *si += 1;
                    true
                } else {
                    false
                }
            }
        };
        if advanced {
            continue;
        }
        let Some((retry_p, retry_s)) = retry else { return Some(false) };
        retry = Some((retry_p, retry_s + 1));
        (*pi, *si) = (retry_p, retry_s + 1);
    }
}

/// Ruby's `bracket`: whether `c` is in the set that starts at `at` (after its `[`); the position
/// after the closing `]` when it is, None when it is not or the set never closes. A `]` right
/// after `[` (or `[!`) closes it; a range's ends match even when written backwards (`[z-a]`).
fn bracket(p: &[char], mut at: usize, c: char) -> Option<usize> {
    let negated = matches!(p.get(at), Some('!' | '^'));
    if negated {
        at += 1;
    }
    let mut found = false;
    while *p.get(at)? != ']' {
        let first_at = unescape(p, at);
        let first = *p.get(first_at)?;
        at = first_at + 1;
        if at >= p.len() {
            return None;
        }
        if p[at] == '-' && p.get(at + 1) != Some(&']') {
            let last_at = unescape(p, at + 1);
            let last = *p.get(last_at)?;
            at = last_at + 1;
            if !found && (first == c || last == c || (first..=last).contains(&c)) {
                found = true;
            }
        } else if first == c {
            found = true;
        }
    }
    (found != negated).then_some(at + 1)
}

/// GitLab's `rules: exists` over a project's files, sorted (`Clause::Exists#satisfied_by?`):
/// patterns without wildcards are looked up, `**/*.ext` ones compared by ending, and the others
/// matched with `fnmatch`; after `MOST_COMPARISONS` such comparisons GitLab stops and counts it
/// as a match. None when herald's own limits (module doc) cut the matching short.
pub fn exists(files: &[String], patterns: &[String]) -> Option<bool> {
    const MOST_COMPARISONS: usize = 10_000;
    let exact = |glob: &str| !glob.contains(['*', '?', '[', '{']);
    let patterns: Vec<&str> = patterns.iter().map(|p| p.trim_start_matches('/')).collect();
    // Patterns that can only match top-level files are compared with top-level files only.
    let top_level_only = patterns.iter().all(|glob| !glob.contains('/') && !glob.contains("**"));
    let files: Vec<&String> = files.iter().filter(|file| !top_level_only || !file.contains('/')).collect();
    let extension = |glob: &str| {
        let rest = glob.strip_prefix("**/*").unwrap_or(glob);
        (rest.starts_with('.') && !rest.contains('/') && exact(rest)).then(|| rest.to_owned())
    };
    if patterns.iter().any(|glob| exact(glob) && files.binary_search_by(|file| file.as_str().cmp(glob)).is_ok()) {
        return Some(true);
    }
    let extensions: Vec<String> =
        patterns.iter().filter(|glob| !exact(glob)).filter_map(|glob| extension(glob)).collect();
    if files.iter().any(|file| extensions.iter().any(|ending| file.ends_with(ending.as_str()))) {
        return Some(true);
    }
    let mut budget = Budget::new(STEP_BUDGET);
    let mut comparisons = 0;
    for glob in patterns.iter().filter(|glob| !exact(glob) && extension(glob).is_none()) {
        // Expanded when first needed, once for every file.
        let mut expanded: Option<Glob> = None;
        for file in &files {
            comparisons += 1;
            if comparisons > MOST_COMPARISONS {
                return Some(true);
            }
            let glob = match &expanded {
                Some(glob) => glob,
                None => expanded.insert(Glob::new(glob)?),
            };
            if glob.matches(file, &mut budget)? {
                return Some(true);
            }
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests;
