//! Outside a CI job, GitLab's predefined variables are not set, and include `rules:` that test
//! `$CI_COMMIT_BRANCH` or `$CI_PIPELINE_SOURCE` would drop whole files. `herald tasks` assumes
//! what GitLab would set for a push of the checkout's current branch, read from the checkout's
//! `.git` (no `git` process: a few small files), as gitlab-ci-local does; the user overrides any
//! of it with `--variable NAME=VALUE`, and the output says what was assumed.

use std::path::{Path, PathBuf};

/// The variables GitLab would set for a push pipeline of the checkout at `project_dir`, as far as
/// its `.git` tells: branch, commit, default branch, and the project's path and server from the
/// `origin` remote. Empty outside a git checkout.
pub fn assumed_variables(project_dir: &Path) -> Vec<(String, String)> {
    let Some(git) = git_dir(project_dir) else { return Vec::new() };
    let mut vars: Vec<(String, String)> = vec![("CI_PIPELINE_SOURCE".into(), "push".into())];
    let mut set = |name: &str, value: String| vars.push((name.to_owned(), value));
    let head = read(&git.join("HEAD")).unwrap_or_default();
    let head = head.trim();
    let branch = head.strip_prefix("ref: refs/heads/").map(str::to_owned);
    let sha = match &branch {
        Some(branch) => resolve_ref(&git, &format!("refs/heads/{branch}")),
        None => Some(head.to_owned()).filter(|sha| sha.len() == 40),
    };
    if let Some(branch) = &branch {
        set("CI_COMMIT_BRANCH", branch.clone());
        set("CI_COMMIT_REF_NAME", branch.clone());
        set("CI_COMMIT_REF_SLUG", slug(branch));
    }
    if let Some(sha) = sha {
        set("CI_COMMIT_SHORT_SHA", sha[..8.min(sha.len())].to_owned());
        set("CI_COMMIT_SHA", sha);
    }
    let default_branch = read(&git.join("refs/remotes/origin/HEAD"))
        .and_then(|text| text.trim().strip_prefix("ref: refs/remotes/origin/").map(str::to_owned))
        .or_else(|| {
            ["main", "master"]
                .into_iter()
                .find(|name| resolve_ref(&git, &format!("refs/heads/{name}")).is_some())
                .map(str::to_owned)
        });
    if let Some(default_branch) = default_branch {
        set("CI_DEFAULT_BRANCH", default_branch);
    }
    if let Some((host, path)) = origin(&git).as_deref().and_then(host_and_path) {
        let (namespace, name) = path.rsplit_once('/').unwrap_or(("", &path));
        set("CI_SERVER_HOST", host.clone());
        set("CI_SERVER_FQDN", host.clone());
        set("CI_SERVER_URL", format!("https://{host}"));
        set("CI_PROJECT_URL", format!("https://{host}/{path}"));
        set("CI_PROJECT_NAMESPACE", namespace.to_owned());
        set("CI_PROJECT_ROOT_NAMESPACE", namespace.split('/').next().unwrap_or_default().to_owned());
        set("CI_PROJECT_NAME", name.to_owned());
        set("CI_PROJECT_PATH_SLUG", slug(&path));
        set("CI_PROJECT_PATH", path.clone());
    }
    vars
}

/// The checkout's git directory: `.git`, or where a `.git` file points (worktrees, submodules).
fn git_dir(project_dir: &Path) -> Option<PathBuf> {
    let dot_git = project_dir.join(".git");
    if dot_git.is_dir() {
        return Some(dot_git);
    }
    let pointer = read(&dot_git)?;
    let target = PathBuf::from(pointer.trim().strip_prefix("gitdir: ")?);
    Some(if target.is_absolute() { target } else { project_dir.join(target) })
}

/// A small file's text (git's files are; anything larger is not one of them).
fn read(path: &Path) -> Option<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(1 << 20).read_to_string(&mut text).ok()?;
    Some(text)
}

/// A ref's commit, from its loose file or `packed-refs`; a worktree's refs live in the common dir.
fn resolve_ref(git: &Path, name: &str) -> Option<String> {
    let common = read(&git.join("commondir")).map_or_else(|| git.to_path_buf(), |dir| git.join(dir.trim()));
    for dir in [git, common.as_path()] {
        if let Some(sha) = read(&dir.join(name)).map(|text| text.trim().to_owned()).filter(|sha| sha.len() == 40) {
            return Some(sha);
        }
        let packed = read(&dir.join("packed-refs")).unwrap_or_default();
        let found = packed.lines().find_map(|line| {
            let (sha, reference) = line.split_once(' ')?;
            (reference == name && sha.len() == 40).then(|| sha.to_owned())
        });
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The `origin` remote's URL, from the repository's config.
fn origin(git: &Path) -> Option<String> {
    let common = read(&git.join("commondir")).map_or_else(|| git.to_path_buf(), |dir| git.join(dir.trim()));
    let config = read(&common.join("config"))?;
    let mut in_origin = false;
    for line in config.lines().map(str::trim) {
        if line.starts_with('[') {
            in_origin = line.replace(' ', "") == "[remote\"origin\"]";
        } else if let (true, Some((key, value))) = (in_origin, line.split_once('=')) {
            if key.trim() == "url" {
                return Some(value.trim().trim_matches('"').to_owned());
            }
        }
    }
    None
}

/// `https://host[:port]/group/project(.git)`, `ssh://git@host[:port]/group/project.git` or
/// `git@host:group/project.git` → (`host`, `group/project`).
fn host_and_path(url: &str) -> Option<(String, String)> {
    let (host, path) = match url.split_once("://") {
        Some((_, rest)) => {
            let (authority, path) = rest.split_once('/')?;
            let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
            (host.split(':').next()?.to_owned(), path)
        }
        None => {
            let (authority, path) = url.split_once(':')?;
            (authority.rsplit_once('@').map_or(authority, |(_, host)| host).to_owned(), path)
        }
    };
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    (!host.is_empty() && path.contains('/')).then(|| (host, path.to_owned()))
}

/// GitLab's `CI_*_SLUG`: lower case, anything but `a-z0-9` as `-`, at most 63 bytes, no `-` at
/// either end.
fn slug(text: &str) -> String {
    let lowered: String = text
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' })
        .collect();
    let cut: String = lowered.chars().take(63).collect();
    cut.trim_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_name_the_server_and_project() {
        let expected = Some(("gitlab.com".to_owned(), "gnome/gtk".to_owned()));
        assert_eq!(host_and_path("https://gitlab.com/gnome/gtk.git"), expected);
        assert_eq!(host_and_path("git@gitlab.com:gnome/gtk.git"), expected);
        assert_eq!(host_and_path("ssh://git@gitlab.com:2222/gnome/gtk"), expected);
        assert_eq!(host_and_path("https://user:pw@gitlab.com/gnome/gtk/"), expected);
        assert_eq!(host_and_path("/srv/repos/app.git"), None);
    }

    #[test]
    fn slugs_are_gitlabs() {
        assert_eq!(slug("Feature/New_Thing"), "feature-new-thing");
        assert_eq!(slug("-x-"), "x");
    }
}
