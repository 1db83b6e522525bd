//! Running the `ip` and `nft` commands that change the kernel's network state.

use tokio::io::AsyncWriteExt;

/// A command failed to run or refused the change; the message has its stderr.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CommandError(pub String);

/// Runs `cmd` with `input` on stdin; its stderr is the error.
pub(crate) async fn run(cmd: &str, args: &[&str], input: Option<&str>) -> Result<(), CommandError> {
    let mut child = tokio::process::Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| CommandError(format!("{cmd}: {e}")))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .await
            .map_err(|e| CommandError(format!("{cmd}: {e}")))?;
    }
    drop(child.stdin.take());
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| CommandError(format!("{cmd}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(CommandError(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
