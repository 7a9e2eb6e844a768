//! Properties of the configuration loader over generated input: whatever the files say, loading
//! returns a pipeline or one error line; it never panics. Seeded, so a failure is reproducible
//! (the seed is in the message). The open-ended version of this is the cargo-fuzz target in fuzz/.

use herald::pipeline::{load_from, InMemory};

/// xorshift64*: small, seeded, reproducible.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const NAMES: [&str; 8] = ["build", "test", ".base", ".steps", "lint", "deploy", "default", ".x"];
const FILES: [&str; 5] = [".gitlab-ci.yml", "a.yml", "b.yml", "ci/c.yml", "ci/deep/d.yml"];

fn value(random: &mut Random, depth: usize) -> String {
    let indent = "  ".repeat(depth + 1);
    match random.below(if depth > 3 { 4 } else { 11 }) {
        0 => random.pick(&["x", "'quoted'", "3", "true", "~", "\"$[[ inputs.v ]]\"", "*anchor"]).to_owned(),
        1 => format!("[{}, {}]", random.pick(&NAMES), random.pick(&NAMES)),
        2 => {
            format!("!reference [{}, {}]", random.pick(&NAMES), random.pick(&["script", "test", "x", "before_script"]))
        }
        3 => random
            .pick(&["herald run -- cargo test", "herald run --name 'a b' -- make", "echo hi && herald run -- x"])
            .to_owned(),
        4 => format!("\n{indent}- {}\n{indent}- {}", value(random, depth + 1), value(random, depth + 1)),
        5 => format!("\n{indent}extends: {}\n{indent}script: {}", random.pick(&NAMES), value(random, depth + 1)),
        6 => format!("\n{indent}<<: *anchor\n{indent}stage: {}", random.pick(&["a", "b"])),
        7 => format!("&anchor\n{indent}key: {}", value(random, depth + 1)),
        8 => format!("\n{indent}matrix:\n{indent}  - A: [x, y]\n{indent}    B: {}", value(random, depth + 2)),
        9 => format!("\n{indent}local: {}", random.pick(&FILES)),
        _ => format!("\n{indent}{}: {}", random.pick(&NAMES), value(random, depth + 1)),
    }
}

fn file(random: &mut Random) -> String {
    let mut text = String::new();
    for _ in 0..random.below(6) + 1 {
        match random.below(5) {
            0 => {
                let include = match random.below(4) {
                    0 => random.pick(&FILES).to_owned(),
                    1 => "ci/*.yml".to_owned(),
                    2 => "'ci/**.yml'".to_owned(),
                    _ => format!("[{}, {}]", random.pick(&FILES), random.pick(&FILES)),
                };
                text.push_str(&format!("include: {include}\n"));
            }
            1 => text.push_str(&format!(
                "{}:\n  extends: [{}, {}]\n  script: {}\n",
                random.pick(&NAMES),
                random.pick(&NAMES),
                random.pick(&NAMES),
                value(random, 1)
            )),
            2 => text.push_str(&format!("{}:\n  parallel: {}\n  script: [x]\n", random.pick(&NAMES), value(random, 1))),
            3 if random.below(2) == 0 => text.push_str(&format!(
                "{}:\n  script: [x]\n  {}\n",
                random.pick(&NAMES),
                random.pick(&[
                    "rules:\n    - if: $CI_COMMIT_BRANCH == \"main\"\n      allow_failure: true\n    - when: never",
                    "rules:\n    - exists: ['{a,b}/**/*.{rs,yml}', '[z-a]*']\n      when: manual",
                    "rules:\n    - changes: [src/**]\n    - if: $X =~ /(/",
                    "rules: !reference [.x, rules]",
                    "only: [main, /^feature/, merge_requests]\n  except:\n    variables: [$NOPE]",
                    "only:\n    refs: [tags]\n    kubernetes: active",
                ])
            )),
            3 => text.push_str(&format!(
                "workflow:\n  rules:\n    - if: {}\n  {}: [\n{}]\n",
                random.pick(&["$CI_COMMIT_TAG", "$CI_PIPELINE_SOURCE == 'push'", "'bad"]),
                random.pick(&NAMES),
                random.pick(&["x,\ny\n", "'a\nb'", "\tz"])
            )),
            _ => text.push_str(&format!("{}: {}\n", random.pick(&NAMES), value(random, 0))),
        }
    }
    text
}

#[test]
fn generated_pipelines_never_panic_the_loader() {
    let (mut loaded, mut errors): (Vec<usize>, Vec<String>) = (Vec::new(), Vec::new());
    for seed in 1..=400u64 {
        let mut random = Random(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let files: Vec<(String, Vec<u8>)> =
            FILES.iter().map(|name| (name.to_string(), file(&mut random).into_bytes())).collect();
        let variables =
            [("CI_PIPELINE_SOURCE".to_owned(), "push".to_owned()), ("CI_COMMIT_BRANCH".into(), "main".into())];
        let result =
            std::panic::catch_unwind(|| load_from(&InMemory(files.clone()), ".gitlab-ci.yml", None, &variables));
        let outcome = result.unwrap_or_else(|_| panic!("seed {seed} panicked on {files:?}"));
        match outcome {
            Ok(pipeline) => loaded.push(pipeline.jobs.len()),
            Err(error) => {
                assert_eq!(error.to_string().lines().count(), 1, "seed {seed}: {error}");
                errors.push(error.to_string().split(':').next().unwrap_or_default().to_owned());
            }
        }
    }
    // The generator must keep reaching both outcomes, or this test would prove little.
    let kinds: std::collections::BTreeSet<&str> =
        errors.iter().map(|e| if e.starts_with("job") { "job" } else { e.as_str() }).collect();
    assert!(loaded.len() >= 20 && loaded.iter().sum::<usize>() >= 20, "too few pipelines loaded: {}", loaded.len());
    assert!(kinds.len() >= 4, "too few kinds of error: {kinds:?}");
}

#[test]
fn mutated_fixtures_never_panic_the_loader() {
    let fixtures = ["nested/.gitlab-ci.yml", "nested/ci/test.yml", "nested/ci/shared/rust.yml", "kinds/.gitlab-ci.yml"];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pipelines");
    for (index, fixture) in fixtures.iter().enumerate() {
        let original = std::fs::read(root.join(fixture)).unwrap();
        for seed in 1..=150u64 {
            let mut random = Random((seed << 8 | index as u64).wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
            let mut bytes = original.clone();
            for _ in 0..random.below(8) + 1 {
                let at = random.below(bytes.len().max(1));
                match random.below(3) {
                    0 => {
                        bytes[at] =
                            random.pick(&["[", "]", "{", ":", "&", "*", "!", "\n", "-", "\u{ff}", " "]).as_bytes()[0]
                    }
                    1 => bytes.insert(at, random.next() as u8),
                    _ => {
                        bytes.remove(at.min(bytes.len().saturating_sub(1)));
                    }
                }
            }
            let files = vec![(".gitlab-ci.yml".to_owned(), bytes.clone())];
            let result = std::panic::catch_unwind(|| load_from(&InMemory(files), ".gitlab-ci.yml", None, &[]));
            assert!(result.is_ok(), "{fixture}, seed {seed} panicked on {:?}", String::from_utf8_lossy(&bytes));
        }
    }
}
