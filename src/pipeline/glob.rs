//! The two kinds of path patterns in a GitLab configuration:
//!
//! - `local:` include globs (gitlab.md §I.1): `*` within one folder, `**` across folders
//!   (`configs/**.yml` matches `configs/a/b.yml`);
//! - `rules: exists` and `changes` patterns (gitlab.md §M): Ruby's
//!   `File.fnmatch?(pattern, path, File::FNM_PATHNAME | File::FNM_DOTMATCH | File::FNM_EXTGLOB)`:
//!   `*` and `?` and `[set]` never match `/`, `**/` matches any number of folders, `{a,b}`
//!   alternatives (nested too), `\` escapes, and dot files match like any other.

/// A `local:` include glob.
pub fn include_glob(pattern: &str, path: &str) -> bool {
    fn matches(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) if p.get(1) == Some(&b'*') => (0..=s.len()).any(|i| matches(&p[2..], &s[i..])),
            (Some(b'*'), _) => {
                (0..=s.len()).take_while(|i| *i == 0 || s[i - 1] != b'/').any(|i| matches(&p[1..], &s[i..]))
            }
            (Some(a), Some(b)) if a == b => matches(&p[1..], &s[1..]),
            _ => false,
        }
    }
    matches(pattern.as_bytes(), path.as_bytes())
}

/// Ruby's `File.fnmatch?` with `FNM_PATHNAME | FNM_DOTMATCH | FNM_EXTGLOB`.
pub fn fnmatch(pattern: &str, path: &str) -> bool {
    let path: Vec<char> = path.chars().collect();
    braces(pattern).iter().any(|alternative| {
        let pattern: Vec<char> = alternative.chars().collect();
        matches(&pattern, &path)
    })
}

/// The patterns `{a,b}` alternatives stand for (FNM_EXTGLOB), nested ones included; a brace
/// without its closing one is taken literally.
fn braces(pattern: &str) -> Vec<String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut depth = 0;
    let mut open = None;
    let mut commas = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '{' => {
                if depth == 0 {
                    open = Some(i);
                    commas.clear();
                }
                depth += 1;
            }
            ',' if depth == 1 => commas.push(i),
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    let start = open.expect("an opening brace");
                    let prefix: String = chars[..start].iter().collect();
                    let suffix: String = chars[i + 1..].iter().collect();
                    let mut bounds = vec![start];
                    bounds.extend(&commas);
                    bounds.push(i);
                    let mut out = Vec::new();
                    for pair in bounds.windows(2) {
                        let middle: String = chars[pair[0] + 1..pair[1]].iter().collect();
                        out.extend(braces(&format!("{prefix}{middle}{suffix}")));
                    }
                    return out;
                }
            }
            _ => {}
        }
        i += 1;
    }
    vec![pattern.to_owned()]
}

fn matches(p: &[char], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        // `**/` at the start of a segment: zero or more whole folders.
        Some('*') if p.get(1) == Some(&'*') && p.get(2) == Some(&'/') => {
            if matches(&p[3..], s) {
                return true;
            }
            s.iter().enumerate().any(|(i, c)| *c == '/' && matches(&p[3..], &s[i + 1..]))
        }
        Some('*') => {
            let rest = &p[1..];
            (0..=s.len()).take_while(|i| *i == 0 || s[i - 1] != '/').any(|i| matches(rest, &s[i..]))
        }
        Some('?') => s.first().is_some_and(|c| *c != '/') && matches(&p[1..], &s[1..]),
        Some('[') => match (class(&p[1..]), s.first()) {
            (Some((set_matches, used)), Some(c)) => *c != '/' && set_matches(*c) && matches(&p[1 + used..], &s[1..]),
            // No closing bracket matches nothing, as in Ruby.
            _ => false,
        },
        Some('\\') if p.len() > 1 => s.first() == Some(&p[1]) && matches(&p[2..], &s[1..]),
        Some(c) => s.first() == Some(c) && matches(&p[1..], &s[1..]),
    }
}

/// A bracket expression after its `[`: a test for one character, and how many pattern characters
/// it took (the closing `]` included). None without a closing `]`. As in Ruby, a `]` right after
/// the `[` closes it (an empty set, matching nothing).
#[allow(clippy::type_complexity)]
fn class(p: &[char]) -> Option<(Box<dyn Fn(char) -> bool>, usize)> {
    let negated = matches!(p.first(), Some('!' | '^'));
    let mut i = usize::from(negated);
    let mut ranges: Vec<(char, char)> = Vec::new();
    loop {
        let c = *p.get(i)?;
        if c == ']' {
            break;
        }
        let c = if c == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            c
        };
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|end| *end != ']') {
            ranges.push((c, p[i + 2]));
            i += 3;
        } else {
            ranges.push((c, c));
            i += 1;
        }
    }
    let test = move |c: char| ranges.iter().any(|(low, high)| (*low..=*high).contains(&c)) != negated;
    Some((Box::new(test), i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_globs_follow_gitlab() {
        assert!(include_glob("configs/*.yml", "configs/a.yml"));
        assert!(!include_glob("configs/*.yml", "configs/sub/a.yml"), "* stays within a folder");
        assert!(include_glob("configs/**.yml", "configs/sub/a.yml"), "** crosses folders");
        assert!(include_glob("ci/**/*.yml", "ci/x/y/z.yml"));
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
        ];
        for (pattern, path, expected) in flags {
            assert_eq!(fnmatch(pattern, path), expected, "{pattern} vs {path}");
        }
    }
}
