//! The node's command line as a user meets it: `skiff agent` takes its token from a file
//! or the environment, never the command line; log output has no colour codes when it is
//! not a terminal. No root needed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn agent(args: &[&str], env_token: Option<&str>) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
    cmd.args(["agent", "--server", "https://127.0.0.1:1", "--ca-file"])
        .arg(dir.path().join("missing-ca.crt"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(args)
        .env_remove("SKIFF_TOKEN")
        .env_remove("SKIFF_TOKEN_FILE");
    if let Some(t) = env_token {
        cmd.env("SKIFF_TOKEN", t);
    }
    cmd.output().unwrap()
}

#[test]
fn the_agent_token_comes_from_a_file_or_the_environment_never_the_command_line() {
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let on_cli = agent(&["--token", "secret"], None);
    assert!(!on_cli.status.success());
    assert!(
        stderr(&on_cli).contains("unexpected argument '--token'"),
        "{}",
        stderr(&on_cli)
    );

    let none = agent(&[], None);
    assert!(!none.status.success());
    assert!(
        stderr(&none).contains("pass --token-file FILE or set SKIFF_TOKEN"),
        "{}",
        stderr(&none)
    );

    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.token");
    std::fs::write(&empty, "\n").unwrap();
    let out = agent(&["--token-file", empty.to_str().unwrap()], None);
    assert!(
        stderr(&out).contains("the API token is empty"),
        "{}",
        stderr(&out)
    );

    // With a token (from the file or the environment) the agent goes on to its next step
    // (here: the missing CA file, or a host that cannot run pods).
    let file = dir.path().join("admin.token");
    std::fs::write(&file, "abc\n").unwrap();
    for out in [
        agent(&["--token-file", file.to_str().unwrap()], None),
        agent(&[], Some("abc")),
    ] {
        assert!(!out.status.success());
        let text = stderr(&out);
        assert!(!text.contains("token"), "{text}");
        assert!(
            text.contains("missing-ca.crt") || text.contains("cannot run pods"),
            "{text}"
        );
    }
}

#[test]
fn log_lines_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .env("SKIFF_NODE", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let ready = line.contains("skiff is ready");
            lines.push(line);
            if ready {
                let _ = tx.send(lines.clone());
            }
        }
    });
    let lines = rx.recv_timeout(Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    let lines = lines.expect("skiff server did not become ready");
    assert!(lines.len() > 1);
    for line in &lines {
        assert!(!line.contains('\x1b'), "colour codes in {line:?}");
    }
    assert!(lines.iter().any(|l| l.contains(" INFO ")), "{lines:#?}");
}
