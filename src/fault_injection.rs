//! Faults the tests inject into the real binary, in debug builds only: release builds compile
//! none of this. `HERALD_TEST_PANIC=<thread>` makes that thread panic as it starts, to prove that
//! a bug on a helper thread never leaves the step unsupervised.

/// Panics when `HERALD_TEST_PANIC` names `thread` (debug builds).
pub fn maybe_panic(thread: &str) {
    #[cfg(debug_assertions)]
    if std::env::var_os("HERALD_TEST_PANIC").is_some_and(|wanted| wanted == thread) {
        panic!("HERALD_TEST_PANIC: an injected panic on the {thread} thread");
    }
    let _ = thread;
}
