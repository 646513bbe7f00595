//! Renders DOT as SVG by piping it into Graphviz's `dot -Tsvg`, found on `PATH`.

use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Longest time `dot` may take.
const DOT_TIMEOUT: Duration = Duration::from_secs(20);

/// Why there is no SVG.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SvgError {
    /// `dot` is not on `PATH`.
    #[error("Graphviz is not installed (no `dot` on PATH); install the graphviz package, or use the DOT text")]
    NotInstalled,
    /// `dot` ran and failed.
    #[error("Graphviz `dot` failed: {0}")]
    Failed(String),
}

/// The SVG rendering of `dot`.
pub async fn svg(dot: &str) -> Result<Vec<u8>, SvgError> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SvgError::NotInstalled,
            _ => SvgError::Failed(format!("cannot run dot: {e}")),
        })?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = dot.as_bytes().to_vec();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
    });
    let output = tokio::time::timeout(DOT_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| SvgError::Failed(format!("no answer within {DOT_TIMEOUT:?}")))?
        .map_err(|e| SvgError::Failed(e.to_string()))?;
    let _ = writer.await;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(SvgError::Failed(format!(
            "{}: {}",
            output.status,
            stderr.trim()
        )));
    }
    Ok(output.stdout)
}
