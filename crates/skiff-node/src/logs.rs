//! Container log files in the CRI format (`<RFC3339Nano> <stream> <P|F> <content>`), with
//! size-based rotation on the writing side and tail/since/timestamps/follow on the reading
//! side, so `kubectl logs` can be served from plain files that survive agent restarts.

use chrono::{DateTime, SecondsFormat, Utc};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest content written in one log line; longer lines are split into `P` (partial)
/// records ending with an `F` record, as containerd does (16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

/// Errors of log reading and writing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A log file could not be read or written.
    #[error("log file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Which output of the container a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// When to rotate: the kubelet's `containerLogMaxSize` and `containerLogMaxFiles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rotation {
    /// Rotate once the current file would grow past this many bytes.
    pub max_size: u64,
    /// Files kept including the current one (`log`, `log.1`, ... `log.<max_files-1>`).
    pub max_files: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        // The kubelet's defaults: 10Mi, 5 files.
        Self {
            max_size: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
}

/// Appends CRI records to a container's log file, rotating by size.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Rotation,
}

impl LogWriter {
    /// Opens (appending to) the log at `path`, creating parent dirs.
    pub fn open(path: impl Into<PathBuf>, rotation: Rotation) -> Result<Self> {
        let path = path.into();
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let file = open_append(&path)?;
        let size = file.metadata().map_err(io_err(&path))?.len();
        Ok(Self {
            path,
            file,
            size,
            rotation,
        })
    }

    /// Writes one line of content (without its newline), split into partial records when it
    /// is longer than [`MAX_LINE`]. `complete` is false for a trailing fragment that had no
    /// newline yet when it was flushed.
    pub fn write_line(
        &mut self,
        stream: Stream,
        content: &[u8],
        complete: bool,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let ts = at.to_rfc3339_opts(SecondsFormat::Nanos, true);
        let mut chunks = content.chunks(MAX_LINE).peekable();
        if content.is_empty() {
            return self.write_record(&ts, stream, if complete { "F" } else { "P" }, b"");
        }
        while let Some(chunk) = chunks.next() {
            let tag = if chunks.peek().is_none() && complete {
                "F"
            } else {
                "P"
            };
            self.write_record(&ts, stream, tag, chunk)?;
        }
        Ok(())
    }

    fn write_record(&mut self, ts: &str, stream: Stream, tag: &str, content: &[u8]) -> Result<()> {
        let mut record = Vec::with_capacity(ts.len() + content.len() + 12);
        record.extend_from_slice(ts.as_bytes());
        record.push(b' ');
        record.extend_from_slice(stream.as_str().as_bytes());
        record.push(b' ');
        record.extend_from_slice(tag.as_bytes());
        record.push(b' ');
        record.extend_from_slice(content);
        record.push(b'\n');
        if self.size > 0 && self.size + record.len() as u64 > self.rotation.max_size {
            self.rotate()?;
        }
        self.file.write_all(&record).map_err(io_err(&self.path))?;
        self.size += record.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        let keep = self.rotation.max_files.max(1) - 1;
        if keep == 0 {
            self.file.set_len(0).map_err(io_err(&self.path))?;
            self.size = 0;
            return Ok(());
        }
        let _ = fs::remove_file(rotated(&self.path, keep));
        for n in (1..keep).rev() {
            let from = rotated(&self.path, n);
            if from.exists() {
                fs::rename(&from, rotated(&self.path, n + 1)).map_err(io_err(&from))?;
            }
        }
        fs::rename(&self.path, rotated(&self.path, 1)).map_err(io_err(&self.path))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(path))
}

/// The kubelet's log path for a container: `<root>/<ns>_<pod>_<uid>/<container>/<restart>.log`
/// (root is `/var/log/pods` upstream; skiff uses `<data-dir>/logs/pods`), so tools that
/// know the kubelet's layout find skiff's logs too.
pub fn pod_log_path(
    root: &Path,
    namespace: &str,
    pod: &str,
    pod_uid: &str,
    container: &str,
    restart_count: u32,
) -> PathBuf {
    root.join(format!("{namespace}_{pod}_{pod_uid}"))
        .join(container)
        .join(format!("{restart_count}.log"))
}

/// Path of the `n`th rotated file (`<log>.n`, higher is older).
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Splits a byte stream from a pipe into lines and writes them as records.
#[derive(Debug)]
pub struct LineSplitter {
    stream: Stream,
    pending: Vec<u8>,
}

impl LineSplitter {
    /// A splitter for one stream of one container.
    pub fn new(stream: Stream) -> Self {
        Self {
            stream,
            pending: Vec::new(),
        }
    }

    /// Feeds bytes just read; complete lines (and over-long fragments) are written.
    pub fn feed(&mut self, data: &[u8], out: &mut LogWriter) -> Result<()> {
        self.pending.extend_from_slice(data);
        let now = Utc::now();
        while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            out.write_line(self.stream, &line[..line.len() - 1], true, now)?;
        }
        while self.pending.len() >= MAX_LINE {
            let part: Vec<u8> = self.pending.drain(..MAX_LINE).collect();
            out.write_line(self.stream, &part, false, now)?;
        }
        Ok(())
    }

    /// Writes what is left when the stream ends, as a complete line.
    pub fn finish(&mut self, out: &mut LogWriter) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rest = std::mem::take(&mut self.pending);
        out.write_line(self.stream, &rest, true, Utc::now())
    }
}

/// What `kubectl logs` asks for.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Only the last N lines (`--tail`).
    pub tail: Option<usize>,
    /// Only lines at or after this time (`--since`, `--since-time`).
    pub since: Option<DateTime<Utc>>,
    /// Prefix each line with its RFC3339Nano timestamp (`--timestamps`).
    pub timestamps: bool,
}

/// One logical line (partial records joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// When the line's first record was written.
    pub time: DateTime<Utc>,
    /// Which stream it came from.
    pub stream: Stream,
    /// Content, ending with `\n` for complete lines.
    pub content: Vec<u8>,
}

impl LogEntry {
    /// The bytes `kubectl logs` prints for this entry.
    pub fn render(&self, timestamps: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.content.len() + 32);
        if timestamps {
            out.extend_from_slice(
                self.time
                    .to_rfc3339_opts(SecondsFormat::Nanos, true)
                    .as_bytes(),
            );
            out.push(b' ');
        }
        out.extend_from_slice(&self.content);
        out
    }
}

/// Parses CRI records into entries, joining partial records; keeps state across reads so a
/// follower can feed it incrementally.
#[derive(Debug, Default)]
struct Parser {
    partial: Option<LogEntry>,
}

impl Parser {
    fn record(&mut self, line: &[u8]) -> Option<LogEntry> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let mut parts = line.splitn(4, |&b| b == b' ');
        let ts = std::str::from_utf8(parts.next()?).ok()?;
        let stream = match parts.next()? {
            b"stdout" => Stream::Stdout,
            b"stderr" => Stream::Stderr,
            _ => return None,
        };
        let tag = parts.next()?;
        let content = parts.next().unwrap_or_default();
        let time = DateTime::parse_from_rfc3339(ts).ok()?.with_timezone(&Utc);
        let entry = self.partial.get_or_insert_with(|| LogEntry {
            time,
            stream,
            content: Vec::new(),
        });
        entry.content.extend_from_slice(content);
        if tag.first() == Some(&b'P') {
            return None;
        }
        let mut done = self.partial.take()?;
        done.content.push(b'\n');
        Some(done)
    }
}

/// Log files of a container, oldest first (rotated ones, then the current one).
fn files_oldest_first(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..1000)
        .map(|n| rotated(path, n))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    files.push(path.to_path_buf());
    files
}

/// Reads the log (rotated files included) and applies `since` and `tail`.
pub fn read(path: &Path, opts: &LogOptions) -> Result<Vec<LogEntry>> {
    read_upto(path, opts, u64::MAX)
}

/// [`read`], looking only at the first `limit` bytes of the current file.
fn read_upto(path: &Path, opts: &LogOptions, limit: u64) -> Result<Vec<LogEntry>> {
    let mut parser = Parser::default();
    let mut entries = Vec::new();
    for file in files_oldest_first(path) {
        let f = match File::open(&file) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&file)(e)),
        };
        let limit = if file == path { limit } else { u64::MAX };
        for line in BufReader::new(f.take(limit)).split(b'\n') {
            let line = line.map_err(io_err(&file))?;
            if let Some(e) = parser.record(&line) {
                if opts.since.is_none_or(|s| e.time >= s) {
                    entries.push(e);
                }
            }
        }
    }
    if let Some(n) = opts.tail {
        let skip = entries.len().saturating_sub(n);
        entries.drain(..skip);
    }
    Ok(entries)
}

/// Sends the log as `kubectl logs -f` shows it: what [`read`] returns, then new lines as
/// they are written (across rotations) until `finished()` is true and the file is drained,
/// or the receiver goes away.
pub async fn follow(
    path: PathBuf,
    opts: LogOptions,
    sink: tokio::sync::mpsc::Sender<Vec<u8>>,
    finished: impl Fn() -> bool,
) -> Result<()> {
    // Open before reading history so nothing written in between is lost or doubled.
    let mut file = loop {
        match File::open(&path) {
            Ok(f) => break f,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !finished() => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(&path)(e)),
        }
    };
    let meta = file.metadata().map_err(io_err(&path))?;
    let mut inode = meta.ino();
    // History is what the file held at this instant; the loop below reads the rest.
    let offset = meta.len();
    let history = read_upto(&path, &opts, offset)?;
    for e in history {
        if sink.send(e.render(opts.timestamps)).await.is_err() {
            return Ok(());
        }
    }
    file.seek(SeekFrom::Start(offset)).map_err(io_err(&path))?;
    let mut parser = Parser::default();
    let mut buf = Vec::new();
    loop {
        let done = finished();
        let mut chunk = Vec::new();
        let n = file.read_to_end(&mut chunk).map_err(io_err(&path))?;
        buf.extend_from_slice(&chunk);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            if let Some(e) = parser.record(&line) {
                if sink.send(e.render(opts.timestamps)).await.is_err() {
                    return Ok(());
                }
            }
        }
        // A new inode at the path means the writer rotated: the old file is complete now
        // (drained above); continue with the file written after it, which is not
        // necessarily the current one when several rotations happened between polls.
        if fs::metadata(&path).is_ok_and(|m| m.ino() != inode) {
            file = next_after(&path, inode)?;
            inode = file.metadata().map_err(io_err(&path))?.ino();
            continue;
        }
        if n == 0 && done {
            return Ok(());
        }
        if n == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Opens the log file written right after the one with inode `ino`: `<log>.(k-1)` if it
/// is now `<log>.k`, else the current file (if `ino` was rotated away entirely, the lines in
/// between are gone, as with the kubelet).
fn next_after(path: &Path, ino: u64) -> Result<File> {
    let rotated_index = (1..1000)
        .map(|n| (n, rotated(path, n)))
        .take_while(|(_, p)| p.exists())
        .find(|(_, p)| fs::metadata(p).is_ok_and(|m| m.ino() == ino))
        .map(|(n, _)| n);
    let next = match rotated_index {
        Some(k) if k > 1 => rotated(path, k - 1),
        _ => path.to_path_buf(),
    };
    match File::open(&next) {
        Ok(f) => Ok(f),
        // Renamed again in between: the current file is the safe fallback.
        Err(_) => File::open(path).map_err(io_err(path)),
    }
}

#[cfg(test)]
mod tests;
