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
//! Limits of herald's own, since Ruby has none: brace expansion stops at `MOST_ALTERNATIVES`
//! patterns (22 × `{a,b}` would be 4 million), and one `rules: exists` clause may spend at most
//! `STEP_BUDGET` matching steps. Past either, the answer is "cannot say" and the rule is kept
//! undecided (the include or job is kept), never a guess.
//!
//! Why not the `globset` crate: its `*` crosses `/` unless told otherwise, it has no Ruby-style
//! `**/` inside a folder name, no nested braces, different bracket rules (`[!]`, `[]`), and it is
//! not in the dependency tree. Ruby's algorithm is 80 lines and exact.

/// Most patterns `{a,b}` alternatives may expand to.
pub const MOST_ALTERNATIVES: usize = 1024;
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
/// expand to more than `MOST_ALTERNATIVES` patterns or the budget runs out.
pub fn fnmatch(pattern: &str, path: &str, budget: &mut Budget) -> Option<bool> {
    let path: Vec<char> = path.chars().collect();
    for alternative in braces(pattern)? {
        let alternative: Vec<char> = alternative.chars().collect();
        if path_match(&alternative, &path, budget)? {
            return Some(true);
        }
    }
    Some(false)
}

/// The patterns `{a,b}` alternatives stand for, as Ruby's `ruby_brace_expand` makes them: the
/// first outermost balanced group is expanded, then each result again. A `{` without its `}`
/// gives no pattern at all (Ruby then matches nothing). None past `MOST_ALTERNATIVES`.
pub fn braces(pattern: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    expand(pattern.chars().collect(), &mut out)?;
    Some(out)
}

fn expand(chars: Vec<char>, out: &mut Vec<String>) -> Option<()> {
    let (mut nest, mut open, mut close) = (0usize, None, None);
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
                    close = Some(i);
                    break;
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
    match (open, close) {
        (Some(open), Some(close)) => {
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
                expand(alternative, out)?;
            }
            Some(())
        }
        (None, None) => {
            if out.len() >= MOST_ALTERNATIVES {
                return None;
            }
            out.push(chars.into_iter().collect());
            Some(())
        }
        _ => Some(()),
    }
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
        for file in &files {
            comparisons += 1;
            if comparisons > MOST_COMPARISONS || fnmatch(glob, file, &mut budget)? {
                return Some(true);
            }
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ruby(pattern: &str, path: &str) -> bool {
        fnmatch(pattern, path, &mut Budget::new(usize::MAX)).unwrap()
    }

    #[test]
    fn include_globs_follow_gitlab() {
        assert!(include_glob("configs/*.yml", "configs/a.yml"));
        assert!(!include_glob("configs/*.yml", "configs/sub/a.yml"), "* stays within a folder");
        assert!(include_glob("configs/**.yml", "configs/sub/a.yml"), "** crosses folders");
        assert!(include_glob("ci/**/*.yml", "ci/x/y/z.yml"));
        assert!(!include_glob("ci/**/*.yml", "ci/z.yml"), "GitLab's regex needs the slash after **");
        assert!(include_glob("ci/***.yml", "ci/a/b.yml"));
        assert!(!include_glob("ci/*.yml", "ci/a.yaml"));
        assert!(include_glob("ci/{a}.yml", "ci/{a}.yml"), "braces are literal in include globs");
    }

    /// Each case's expected value is what Ruby 3.1's `File.fnmatch?` answers with the same flags.
    #[test]
    fn fnmatch_is_rubys() {
        let flags = [
            ("*.md", "README.md", true),
            ("*.md", "docs/README.md", false),
            ("**/*.md", "README.md", true),
            ("**/*.md", "docs/a/README.md", true),
            ("docs/**/*.md", "docs/README.md", true),
            ("**.md", "docs/README.md", false),
            ("*", ".hidden", true),
            ("**/*", ".gitlab/ci/a.yml", true),
            ("Dockerfile?", "Dockerfile2", true),
            ("Dockerfile?", "Dockerfile", false),
            ("a?b", "a/b", false),
            ("{src,lib}/**/*.{rs,toml}", "lib/x/Cargo.toml", true),
            ("{src,lib}/**/*.{rs,toml}", "test/x.rs", false),
            ("{a,{b,c}}.txt", "c.txt", true),
            ("[a-c]at", "bat", true),
            ("[!a-c]at", "bat", false),
            ("[^a-c]at", "rat", true),
            ("x[", "x[", false),
            ("[]]x", "]x", false),
            ("[a-]x", "-x", true),
            ("**.md", "README.md", true),
            ("a/**", "a/b/c", false),
            ("a/**/", "a/b/", true),
            ("**/b", "a/.x/b", true),
            ("*/b", ".x/b", true),
            ("\\*.txt", "*.txt", true),
            ("\\*.txt", "a.txt", false),
            ("ci/[ab]/*.yml", "ci/a/x.yml", true),
            // Ruby's own corner cases (dir.c): an unbalanced brace matches nothing, `[!]` any
            // character, a backwards range its two ends.
            ("a{b", "a{b", false),
            ("a}b", "a}b", true),
            ("[!]", "x", true),
            ("[z-a]", "a", true),
            ("[z-a]", "m", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY/c", false),
            ("**/x/**/y", "a/x/b/c/y", true),
            ("**/x/**/y", "a/x/b/c/z", false),
        ];
        for (pattern, path, expected) in flags {
            assert_eq!(ruby(pattern, path), expected, "{pattern} vs {path}");
        }
    }

    /// Issue 25: `d/*a*a*a*a*a*a*a*ab.yml` against a 60-character name backtracked exponentially.
    /// Counted in steps, not seconds: the work is bounded by the pattern's length times the name's.
    #[test]
    fn pathological_globs_take_polynomial_steps() {
        let pattern = "d/*a*a*a*a*a*a*a*ab.yml";
        let path = format!("d/{}.yml", "a".repeat(56));
        let bound = pattern.len() * path.len();

        let mut budget = Budget::new(usize::MAX);
        assert_eq!(include_glob_counted(pattern, &path, &mut budget), Some(false));
        assert!(budget.spent() <= bound, "include glob: {} steps", budget.spent());

        let mut budget = Budget::new(usize::MAX);
        assert_eq!(fnmatch(pattern, &path, &mut budget), Some(false));
        assert!(budget.spent() <= 2 * bound, "fnmatch: {} steps", budget.spent());

        let deep = format!("{}b", "**/".repeat(10));
        let mut budget = Budget::new(usize::MAX);
        assert_eq!(fnmatch(&deep, &"a/".repeat(30), &mut budget), Some(false));
        assert!(budget.spent() <= 60 * 60, "**/ retries: {} steps", budget.spent());
    }

    /// Issue 25: 22 × `{a,b}` expanded to 4 million patterns (14 s, 339 MB); now it is refused at
    /// `MOST_ALTERNATIVES`, after at most that many.
    #[test]
    fn brace_expansion_is_capped() {
        let pattern = "{a,b}".repeat(22);
        assert_eq!(braces(&pattern), None);
        assert_eq!(fnmatch(&pattern, "ab", &mut Budget::new(usize::MAX)), None);
        assert_eq!(exists(&["ab".to_owned()], &[pattern]), None, "undecidable, not a guess");
        assert_eq!(braces(&"{a,b}".repeat(10)).map(|all| all.len()), Some(1024));
        assert_eq!(braces("x{a,b{c,d}}y").unwrap(), ["xay", "xbcy", "xbdy"]);
    }

    /// A plain recursive matcher (exponential on hostile patterns, fine on small ones), for
    /// comparing with Ruby's algorithm on patterns where `**/` only starts a folder.
    fn recursive(p: &[char], s: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('*') if p.get(1) == Some(&'*') && p.get(2) == Some(&'/') => {
                recursive(&p[3..], s) || s.iter().enumerate().any(|(i, c)| *c == '/' && recursive(&p[3..], &s[i + 1..]))
            }
            Some('*') => (0..=s.len()).take_while(|i| *i == 0 || s[i - 1] != '/').any(|i| recursive(&p[1..], &s[i..])),
            Some('?') => s.first().is_some_and(|c| *c != '/') && recursive(&p[1..], &s[1..]),
            Some(c) => s.first() == Some(c) && recursive(&p[1..], &s[1..]),
        }
    }

    #[test]
    fn rubys_algorithm_agrees_with_a_plain_recursive_matcher() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut below = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..3000 {
            let folders = below(3) + 1;
            let pattern: Vec<String> = (0..folders)
                .map(|_| match below(5) {
                    0 => "**".to_owned(),
                    // `**` inside a folder name is `*` to Ruby, not to the plain matcher.
                    _ => {
                        let mut name: String = (0..below(4) + 1).map(|_| ["a", "b", "*", "?", "a"][below(5)]).collect();
                        while name.contains("**") {
                            name = name.replace("**", "*");
                        }
                        name
                    }
                })
                .collect();
            let pattern = pattern.join("/");
            let path: String = (0..below(7)).map(|_| ["a", "b", "/", "a"][below(4)]).collect();
            let expected = recursive(&pattern.chars().collect::<Vec<_>>(), &path.chars().collect::<Vec<_>>());
            assert_eq!(ruby(&pattern, &path), expected, "{pattern} vs {path}");
        }
    }

    #[test]
    fn exists_follows_gitlabs_clause() {
        let files: Vec<String> = ["Cargo.toml", "src/lib.rs", "web/app.js"].map(String::from).to_vec();
        let exists = |patterns: &[&str]| exists(&files, &patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>());
        assert_eq!(exists(&["Cargo.toml"]), Some(true));
        assert_eq!(exists(&["/Cargo.toml"]), Some(true));
        assert_eq!(exists(&["package.json"]), Some(false));
        assert_eq!(exists(&["**/*.js"]), Some(true));
        assert_eq!(exists(&["*.rs"]), Some(false), "* stays in the top folder");
        assert_eq!(exists(&["src/*.rs"]), Some(true));
        let many: Vec<String> = (0..10_001).map(|i| format!("f{i:05}")).collect();
        assert_eq!(
            super::exists(&many, &["nothing/*.x".to_owned()]),
            Some(true),
            "after 10,000 comparisons GitLab counts a match"
        );
    }
}
