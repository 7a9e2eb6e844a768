//! Readable step names for the runner's stages (gitlab.md §H.5).

/// Stages run but not published unless `HERALD_EXECUTOR_HIDE` says otherwise: the runner's own
/// bookkeeping, which a reviewer has no use for.
pub const DEFAULT_HIDDEN: &str = "prepare_script,cleanup_file_variables";

/// `get_sources` → "fetch sources", `build_script`/`step_script` → "script", `step_release` →
/// "release"; an unknown stage keeps its name.
pub fn step_name(stage: &str) -> String {
    let name = match stage {
        "prepare_script" => "prepare",
        "get_sources" => "fetch sources",
        "clear_worktree" => "clear worktree",
        "restore_cache" => "restore cache",
        "download_artifacts" => "download artifacts",
        // The runner renames step_script to build_script for custom executors.
        "build_script" | "step_script" => "script",
        "after_script" => "after script",
        "archive_cache" | "archive_cache_on_failure" => "save cache",
        "upload_artifacts_on_success" | "upload_artifacts_on_failure" => "upload artifacts",
        "cleanup_file_variables" => "clean up",
        other => return other.strip_prefix("step_").unwrap_or(other).replace('_', " "),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_read_like_steps() {
        assert_eq!(step_name("get_sources"), "fetch sources");
        assert_eq!(step_name("build_script"), "script");
        assert_eq!(step_name("step_script"), "script");
        assert_eq!(step_name("upload_artifacts_on_failure"), "upload artifacts");
        assert_eq!(step_name("step_release"), "release");
        assert_eq!(step_name("some_new_stage"), "some new stage");
    }
}
