//! The founding article replayed (docs/walkthrough.md), run as written: this test reads the
//! document's ` ```sh chN ` blocks, runs each chapter's blocks in one bash (after the
//! ` ```sh setup ` block) against a real `skiff server` on a real node in a network namespace of
//! its own, and compares what each block printed with the ` ```text ` block under it. Names,
//! addresses, ages, digests and `rollout status` progress lines differ from run to run and are
//! compared loosely ([`normalize`]); a block tagged `nocheck` is shown but not compared.
//! `WALKTHROUGH_UPDATE=1` writes the captured outputs into the document instead.
//!
//! Root only (runc, network namespaces); under `CI=true` a missing prerequisite fails the test.

#[allow(unused)]
mod common;
#[path = "common/node.rs"]
mod node;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Longest a chapter may run before the test fails: chapter 1 builds the images, which on a
/// cold target dir compiles the collector's dependencies, and waits on cargo's lock of the
/// target dir while another build holds it.
const CHAPTER_TIMEOUT: Duration = Duration::from_secs(900);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn doc_path() -> PathBuf {
    repo().join("docs/walkthrough.md")
}

/// A fenced block of the document: its info string's words, its text, and the lines it spans
/// (the fences included, 0-based, end exclusive).
#[derive(Debug, Clone)]
struct Block {
    tags: Vec<String>,
    text: String,
    start: usize,
    end: usize,
}

/// Every fenced block of `doc`, in order.
fn blocks(doc: &str) -> Vec<Block> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some(info) = lines[i].strip_prefix("```") {
            let start = i;
            let tags = info.split_whitespace().map(String::from).collect();
            let mut text = String::new();
            i += 1;
            while i < lines.len() && lines[i].trim_end() != "```" {
                text.push_str(lines[i]);
                text.push('\n');
                i += 1;
            }
            out.push(Block {
                tags,
                text,
                start,
                end: (i + 1).min(lines.len()),
            });
        }
        i += 1;
    }
    out
}

/// A command block of a chapter and the output block under it, if any.
#[derive(Debug, Clone)]
struct Step {
    commands: Block,
    output: Option<Block>,
}

impl Step {
    fn checked(&self) -> bool {
        !self.commands.tags.iter().any(|t| t == "nocheck")
    }
}

/// The `sh` blocks tagged `chapter` with the `text` block that follows each (nothing but blank
/// lines between them).
fn steps(doc: &str, chapter: &str) -> Vec<Step> {
    let lines: Vec<&str> = doc.lines().collect();
    let all = blocks(doc);
    let mut out = Vec::new();
    for (n, b) in all.iter().enumerate() {
        if b.tags.first().map(String::as_str) != Some("sh") || !b.tags.iter().any(|t| t == chapter)
        {
            continue;
        }
        let output = all.get(n + 1).filter(|next| {
            next.tags.first().map(String::as_str) == Some("text")
                && lines[b.end..next.start].iter().all(|l| l.trim().is_empty())
        });
        out.push(Step {
            commands: b.clone(),
            output: output.cloned(),
        });
    }
    out
}

fn setup(doc: &str) -> String {
    blocks(doc)
        .into_iter()
        .find(|b| b.tags == ["sh", "setup"])
        .expect("the document has a ```sh setup block")
        .text
}

/// The alphabet of the random suffixes in generated names (upstream's `SafeEncodeString`).
fn safe_suffix(s: &str, lens: std::ops::RangeInclusive<usize>) -> bool {
    lens.contains(&s.len()) && s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
}

/// One word of output with what differs between runs replaced by a placeholder.
fn normalize_word(w: &str) -> String {
    let is_ip = |s: &str| {
        let host = s.split(':').next().unwrap_or(s);
        let parts: Vec<&str> = host.split('.').collect();
        parts.len() == 4
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| c.is_ascii_digit()))
    };
    let is_hex = |s: &str| s.len() >= 12 && s.chars().all(|c| c.is_ascii_hexdigit());
    let is_age = |s: &str| {
        let mut units = 0;
        let mut digits = 0;
        for c in s.chars() {
            if c.is_ascii_digit() {
                digits += 1;
            } else if "smhd".contains(c) && digits > 0 {
                units += 1;
                digits = 0;
            } else {
                return false;
            }
        }
        units > 0 && digits == 0
    };
    if is_ip(w) {
        return "<ip>".into();
    }
    if let Some(h) = w.strip_prefix("sha256:").filter(|h| is_hex(h)) {
        return format!("sha256:<hex{}>", if h.len() == 64 { "" } else { "-short" });
    }
    if is_hex(w) && w.chars().any(|c| c.is_ascii_digit()) {
        return "<hex>".into();
    }
    if w.len() >= 20 && w.as_bytes()[4] == b'-' && w.contains('T') && w.ends_with('Z') {
        return "<time>".into();
    }
    if is_age(w)
        || w.strip_suffix("ms")
            .is_some_and(|n| n.parse::<u64>().is_ok())
    {
        return "<age>".into();
    }
    let mut parts: Vec<String> = w.split('-').map(String::from).collect();
    if parts.len() >= 2 {
        let last = parts.len() - 1;
        if safe_suffix(&parts[last], 5..=5) {
            parts[last] = "<id>".into();
            if last >= 2 && safe_suffix(&parts[last - 1], 6..=10) {
                parts[last - 1] = "<hash>".into();
            }
        } else if safe_suffix(&parts[last], 6..=10) {
            parts[last] = "<hash>".into();
        }
    }
    parts.join("-")
}

/// Output as compared: words normalized ([`normalize_word`]), runs of blanks as one space,
/// blank lines and `rollout status` progress lines (as many as the timing makes) dropped.
fn normalize(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("Waiting for "))
        .map(|l| {
            let mut out = String::new();
            let mut word = String::new();
            let flush = |word: &mut String, out: &mut String| {
                if !word.is_empty() {
                    out.push_str(&normalize_word(word));
                    word.clear();
                }
            };
            for c in l.trim().chars() {
                if c.is_ascii_alphanumeric() || "-.:_".contains(c) {
                    word.push(c);
                } else {
                    flush(&mut word, &mut out);
                    if !(c == ' ' && out.ends_with(' ')) {
                        out.push(if c.is_whitespace() { ' ' } else { c });
                    }
                }
            }
            flush(&mut word, &mut out);
            out
        })
        .collect()
}

/// What one chapter's run printed, block by block; `Err` with what was printed so far when a
/// command failed or the chapter timed out.
fn run_chapter(
    c: &node::NodeCluster,
    work: &Path,
    setup: &str,
    steps: &[Step],
) -> Result<Vec<String>, String> {
    const MARK: &str = "@@walkthrough-block@@";
    let mut script = String::from("exec 2>&1\nset -euo pipefail\n");
    script.push_str(setup);
    for s in steps {
        script.push_str(&format!("echo {MARK}\n"));
        script.push_str(&s.commands.text);
    }
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_skiff"))
        .parent()
        .expect("skiff's directory")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = c
        .in_netns("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(work)
        .env("PATH", path)
        // The images are built with the test build's profile, whose dependencies are built.
        .env("COLLECTOR_BUILD_PROFILE", "dev")
        .env_remove("KUBECONFIG")
        // Log lines (`skiff image load` logs what it loaded) without terminal colours.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Its own process group, so whatever a failed block left running is killed with it.
        .process_group(0)
        .spawn()
        .expect("spawn bash");
    let pgid = child.id() as i32;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + CHAPTER_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for bash") {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // SAFETY: kill(2) of the process group this test started.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = child.wait();
    let out = reader.join().expect("output reader");
    let mut outputs: Vec<String> = out.split(&format!("{MARK}\n")).map(String::from).collect();
    let setup_output = outputs.remove(0);
    match status {
        Some(s) if s.success() && outputs.len() == steps.len() => Ok(outputs),
        other => Err(format!(
            "{}; block {} of {} failed:\n{}\n--- it printed:\n{}{}",
            match other {
                None => format!("timed out after {CHAPTER_TIMEOUT:?}"),
                Some(s) => format!("bash exited with {s}"),
            },
            outputs.len(),
            steps.len(),
            steps
                .get(outputs.len().saturating_sub(1))
                .map(|s| s.commands.text.as_str())
                .unwrap_or(""),
            setup_output,
            outputs.last().cloned().unwrap_or_default(),
        )),
    }
}

/// Writes `captured` (per step of every chapter run) into the output blocks of the document.
fn update_document(doc: &str, captured: &[(Step, String)]) -> String {
    let mut lines: Vec<String> = doc.lines().map(String::from).collect();
    let mut edits: Vec<(usize, usize, Vec<String>)> = captured
        .iter()
        .map(|(step, out)| {
            let mut block = vec!["```text".to_string()];
            block.extend(out.trim_end().lines().map(String::from));
            block.push("```".into());
            match &step.output {
                Some(o) => (o.start, o.end, block),
                None => {
                    block.insert(0, String::new());
                    (step.commands.end, step.commands.end, block)
                }
            }
        })
        .collect();
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (start, end, block) in edits {
        lines.splice(start..end, block);
    }
    lines.join("\n") + "\n"
}

/// Why this machine cannot run the walkthrough, if it cannot.
fn missing_prerequisite() -> Option<String> {
    node::skip_reason().or_else(|| {
        ["curl", "bash", "cargo"]
            .into_iter()
            .find(|tool| {
                !std::env::var_os("PATH")
                    .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
                    .unwrap_or(false)
            })
            .map(|tool| format!("needs {tool}"))
    })
}

/// The directory the chapters run in, as the reader's checkout: `crates` and `examples` of
/// this repository, and `skiff-data`, the data dir of `c`'s server.
fn work_dir(c: &node::NodeCluster) -> tempfile::TempDir {
    let work = tempfile::tempdir().expect("work dir");
    for dir in ["crates", "examples"] {
        std::os::unix::fs::symlink(repo().join(dir), work.path().join(dir)).expect("symlink");
    }
    std::os::unix::fs::symlink(c.dir.path(), work.path().join("skiff-data")).expect("symlink");
    work
}

/// The chapter a block tag belongs to: `ch4` for `ch4` and for the stages `ch4-lost`,
/// `ch4-back` of a chapter the test runs in parts.
fn chapter_of(tag: &str) -> &str {
    tag.split('-').next().unwrap_or(tag)
}

/// Runs `chapters` in order on `c` (chapter 1 first: it builds and loads the images), checks or
/// (with `WALKTHROUGH_UPDATE=1`) records their outputs.
fn walk(c: &node::NodeCluster, chapters: &[&str]) {
    let work = work_dir(c);
    walk_in(c, work.path(), chapters);
}

/// [`walk`] in a work dir of the caller's ([`work_dir`]), for chapters run in stages.
fn walk_in(c: &node::NodeCluster, work: &Path, chapters: &[&str]) {
    // WALKTHROUGH_CHAPTERS=ch1,ch7 runs (and records) just those, when working on a chapter.
    let only = std::env::var("WALKTHROUGH_CHAPTERS").ok();
    let chapters: Vec<&str> = chapters
        .iter()
        .copied()
        .filter(|ch| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|x| chapter_of(ch) == x))
        })
        .collect();
    let doc = std::fs::read_to_string(doc_path()).expect("docs/walkthrough.md");
    let setup = setup(&doc);
    let update = std::env::var_os("WALKTHROUGH_UPDATE").is_some();
    let mut captured = Vec::new();
    let mut mismatches = Vec::new();
    let mut failed = None;
    for chapter in &chapters {
        let steps = steps(&doc, chapter);
        assert!(
            !steps.is_empty(),
            "docs/walkthrough.md has no ```sh {chapter} block"
        );
        let started = Instant::now();
        let outputs = match run_chapter(c, work, &setup, &steps) {
            Ok(o) => o,
            Err(e) => {
                failed = Some(format!("chapter {chapter}: {e}"));
                break;
            }
        };
        eprintln!("{chapter}: {:?}", started.elapsed());
        for (step, out) in steps.into_iter().zip(outputs) {
            let expected = step.output.as_ref().map(|o| o.text.as_str()).unwrap_or("");
            if step.checked() && !update && normalize(expected) != normalize(&out) {
                mismatches.push(format!(
                    "{chapter}, the block at line {}:\n{}--- the document shows:\n{expected}--- it printed:\n{out}",
                    step.commands.start + 1,
                    step.commands.text
                ));
            }
            captured.push((step, out));
        }
    }
    if update {
        // Chapters run in parallel tests, and each records its own outputs: the document is
        // read again under one lock, so a chapter's write never drops another's.
        static DOCUMENT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_writer = DOCUMENT.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = std::fs::read_to_string(doc_path()).expect("docs/walkthrough.md");
        let fresh_steps = chapters.iter().flat_map(|ch| steps(&fresh, ch));
        let captured: Vec<(Step, String)> = fresh_steps
            .zip(captured.into_iter().map(|(_, out)| out))
            .collect();
        std::fs::write(doc_path(), update_document(&fresh, &captured)).expect("write document");
    }
    if let Some(why) = failed {
        panic!("{why}\nserver log:\n{}", c.log_text());
    }
    assert!(
        mismatches.is_empty(),
        "output differs from docs/walkthrough.md (WALKTHROUGH_UPDATE=1 records it):\n{}",
        mismatches.join("\n\n")
    );
}

/// The cluster, or `None` (after saying why) where it cannot run; under `CI=true` that fails.
fn cluster() -> Option<node::NodeCluster> {
    match missing_prerequisite() {
        Some(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and the walkthrough cannot run: {why}")
        }
        Some(why) => {
            eprintln!("skipped: {why}");
            None
        }
        None => Some(node::NodeCluster::start()),
    }
}

#[test]
fn the_article_replayed_chapter_by_chapter() {
    let Some(c) = cluster() else { return };
    walk(
        &c,
        &[
            "ch1", "ch2", "ch3", "ch5", "ch6", "ch7", "ch8", "ch9", "ch10", "ch12",
        ],
    );
}

/// Chapter 4 runs in three stages around the power cut the test makes (the reader pulls a
/// plug): `ch4` on two Ready nodes, `ch4-lost` after node-b's power loss, `ch4-back` after
/// its power comes back.
#[test]
fn chapter_4_the_server_dies() {
    if let Some(why) = missing_prerequisite() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: {why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    // Two nodes: the server's, where chapter 1 loads the images, then `node-b`, a
    // `skiff agent` whose data dir is `./skiff-agent-data` in the work dir.
    let c = node::NodeCluster::start_listening("0.0.0.0:0");
    let work = work_dir(&c);
    walk_in(&c, work.path(), &["ch1"]);
    let mut agent = node::AgentNode::join(&c, "node-b", "10.244.1.0/24");
    std::os::unix::fs::symlink(agent.dir.path(), work.path().join("skiff-agent-data"))
        .expect("symlink");
    walk_in(&c, work.path(), &["ch4"]);
    agent.power_off();
    walk_in(&c, work.path(), &["ch4-lost"]);
    agent.power_on();
    walk_in(&c, work.path(), &["ch4-back"]);
}

#[test]
fn chapter_11_configmaps_and_secrets() {
    let Some(c) = cluster() else { return };
    walk(&c, &["ch1", "ch11"]);
}

#[test]
fn chapter_13_observability() {
    let Some(c) = cluster() else { return };
    walk(&c, &["ch1", "ch13"]);
}

#[test]
fn chapter_14_compose_and_the_end_state() {
    let Some(c) = cluster() else { return };
    walk(&c, &["ch1", "ch14"]);
}

#[test]
fn names_addresses_ages_and_digests_compare_loosely() {
    let cases = [
        (
            "collector-7d9f8c6b5-x2k4z   1/1   Running   0   12s",
            "collector-<hash>-<id> 1/1 Running 0 <age>",
        ),
        ("collector-66b4c8d7f9", "collector-<hash>"),
        ("mystore-0 collector-route", "mystore-0 collector-route"),
        (
            "hello   10.244.0.5:8080,10.244.0.6:8080   3m2s",
            "hello <ip>,<ip> <age>",
        ),
        (
            "Loaded image: collector:v1 (3f2a9c81b0de)",
            "Loaded image: collector:v1 (<hex>)",
        ),
        (
            "\"time\":\"2026-12-07T06:22:21.123456Z\"",
            "\"time\":\"<time>\"",
        ),
        ("failed requests: 0", "failed requests: 0"),
    ];
    for (raw, want) in cases {
        assert_eq!(normalize(raw), vec![want.to_string()], "{raw}");
    }
    assert_eq!(
        normalize("Waiting for deployment \"collector\" rollout to finish: 1 of 3\n\ndone\n"),
        vec!["done".to_string()]
    );
}

#[test]
fn chapters_are_read_from_the_document_with_their_outputs() {
    let doc = "x\n```sh setup\nexport A=1\n```\n```sh ch1\necho hi\n```\n\n```text\nhi\n```\n```sh ch1 nocheck\ndate\n```\n```sh ch2\ntrue\n```\n";
    assert_eq!(setup(doc), "export A=1\n");
    assert_eq!(
        ["ch4", "ch4-lost", "ch11"].map(chapter_of),
        ["ch4", "ch4", "ch11"]
    );
    let s = steps(doc, "ch1");
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].commands.text, "echo hi\n");
    assert_eq!(s[0].output.as_ref().unwrap().text, "hi\n");
    assert!(s[0].checked() && !s[1].checked());
    assert!(s[1].output.is_none());
    let updated = update_document(
        doc,
        &[
            (s[0].clone(), "hello\n".into()),
            (s[1].clone(), "today\n".into()),
        ],
    );
    assert!(
        updated.contains("```sh ch1\necho hi\n```\n\n```text\nhello\n```\n"),
        "{updated}"
    );
    assert!(
        updated.contains("```sh ch1 nocheck\ndate\n```\n\n```text\ntoday\n```\n"),
        "{updated}"
    );
    assert_eq!(
        steps(&updated, "ch1")[1].output.as_ref().unwrap().text,
        "today\n"
    );
}
