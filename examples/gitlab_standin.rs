//! The tests' GitLab stand-in (the `herald-standin` crate, standin/) as a program, for benchmarks:
//! prints its API URL, serves until its stdin closes, then prints what it received as JSON.
//!
//!     cargo run --release --example gitlab_standin < some-fifo

use std::collections::BTreeMap;
use std::io::Write;

fn main() {
    let gitlab = herald_standin::GitLab::start();
    println!("{}", gitlab.api_url());
    let _ = std::io::stdout().flush();
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());

    let requests = gitlab.requests();
    let mut by_method: BTreeMap<String, usize> = BTreeMap::new();
    for request in &requests {
        *by_method.entry(request.method.clone()).or_default() += 1;
    }
    let statuses = gitlab.with(|world| world.all_statuses());
    let open = statuses.iter().filter(|s| s.status == "running" || s.status == "pending").count();
    println!(
        "{}",
        serde_json::json!({ "requests": requests.len(), "by_method": by_method, "statuses": statuses.len(), "left_open": open })
    );
}
