fn main() {
    // First, before any thread: a process that holds a token keeps its memory to itself, so the
    // steps it runs cannot read it from /proc/<herald>/environ or mem (docs/design.md §8).
    if herald::supervise::holds_token(&herald::env::ProcessEnv) {
        herald::supervise::keep_memory_private();
    }
    std::process::exit(herald::cli::main());
}
