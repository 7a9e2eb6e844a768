//! The globs against Ruby's answers, GitLab's clause, a plain recursive matcher, and their
//! bounds: the pathological cases are counted in steps (`Budget`), never timed.

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

/// Brace groups whose every result is empty (a lone `{` after them) expanded 2^groups
/// patterns into nothing: `{a,b}` × 30 and a `{` took most of an hour. Counted in steps: results are
/// counted whether empty or not, so the work is bounded by the cap times the depth.
#[test]
fn brace_expansion_into_nothing_is_bounded() {
    for groups in [16, 40] {
        let pattern = "{a,b}".repeat(groups) + "{";
        let mut budget = Budget::new(usize::MAX);
        assert_eq!(braces_counted(&pattern, &mut budget), None, "{groups} groups: cannot say");
        let bound = (MOST_ALTERNATIVES + 1) * (groups + 1);
        assert!(budget.spent() <= bound, "{groups} groups: {} steps, more than {bound}", budget.spent());
    }
    let mut budget = Budget::new(usize::MAX);
    assert_eq!(braces_counted(&("{a,b}".repeat(8) + "{"), &mut budget), Some(vec![]), "Ruby: nothing matches");
    assert!(budget.spent() < 2 * 256 * 9);
}

/// Expansion recursed once per brace group, so `{a}` repeated or nested deep enough
/// overflowed the stack: an abort, which in `herald run` takes the step's supervisor with it.
#[test]
fn brace_groups_nest_only_so_deep() {
    let many = "{a}".repeat(1_400);
    let nested = "{".repeat(100_000) + &"}".repeat(100_000);
    // 1,400 groups fit under `MOST_EXPANDED_CHARS`; on a small stack they need the depth cap.
    let answers = std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || (braces(&many), braces(&nested)))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(answers, (None, None));
    let deep_enough = "{a}".repeat(MOST_BRACE_GROUPS);
    assert_eq!(braces(&deep_enough), Some(vec!["a".repeat(MOST_BRACE_GROUPS)]));
}

/// 1,024 alternatives of a long pattern would be gigabytes: expansion stops at
/// `MOST_EXPANDED_CHARS`, and a clause that needs more is undecided.
#[test]
fn brace_expansion_is_bounded_in_size() {
    let long = "{a,b}".repeat(10) + &"x".repeat(5_000);
    assert_eq!(braces(&long), None);
    assert_eq!(exists(&["ab".to_owned()], &[long]), None);
    let short = "{a,b}".repeat(10) + &"x".repeat(1_000);
    assert_eq!(braces(&short).map(|all| all.len()), Some(1024));
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
