//! Unit tests of the CRI log writer and reader.

use super::*;
use chrono::TimeZone;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 123)
        .single()
        .unwrap()
}

#[test]
fn records_use_the_cri_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c/0.log");
    let mut w = LogWriter::open(&path, Rotation::default()).unwrap();
    w.write_line(Stream::Stdout, b"hello world", true, at(0))
        .unwrap();
    w.write_line(Stream::Stderr, b"oops", true, at(1)).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        "2023-11-14T22:13:20.000000123Z stdout F hello world\n\
         2023-11-14T22:13:21.000000123Z stderr F oops\n"
    );
}

#[test]
fn long_lines_are_split_into_partial_records_and_joined_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let mut w = LogWriter::open(&path, Rotation::default()).unwrap();
    let mut split = LineSplitter::new(Stream::Stdout);
    let long = vec![b'x'; MAX_LINE * 2 + 10];
    split.feed(&long, &mut w).unwrap();
    split.feed(b"\nshort\ntrailing", &mut w).unwrap();
    split.finish(&mut w).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    let tags: Vec<&str> = text.lines().map(|l| l.split(' ').nth(2).unwrap()).collect();
    assert_eq!(tags, ["P", "P", "F", "F", "F"]);
    let entries = read(&path, &LogOptions::default()).unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].content.len(), long.len() + 1);
    assert_eq!(entries[1].content, b"short\n");
    assert_eq!(entries[2].content, b"trailing\n");
}

#[test]
fn rotation_keeps_max_files_and_reads_across_them_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let rotation = Rotation {
        max_size: 200,
        max_files: 3,
    };
    let mut w = LogWriter::open(&path, rotation).unwrap();
    for i in 0..40 {
        w.write_line(Stream::Stdout, format!("line {i}").as_bytes(), true, at(i))
            .unwrap();
    }
    assert!(rotated(&path, 1).exists());
    assert!(rotated(&path, 2).exists());
    assert!(!rotated(&path, 3).exists());
    for f in [path.clone(), rotated(&path, 1), rotated(&path, 2)] {
        assert!(fs::metadata(f).unwrap().len() <= 200);
    }
    let entries = read(&path, &LogOptions::default()).unwrap();
    let last = entries.last().unwrap();
    assert_eq!(last.content, b"line 39\n");
    let numbers: Vec<i64> = entries
        .iter()
        .map(|e| (e.time - at(0)).num_seconds())
        .collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
}

#[test]
fn tail_since_and_timestamps_filter_and_render_like_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let mut w = LogWriter::open(&path, Rotation::default()).unwrap();
    for i in 0..10 {
        w.write_line(Stream::Stdout, format!("l{i}").as_bytes(), true, at(i))
            .unwrap();
    }
    let tail = read(
        &path,
        &LogOptions {
            tail: Some(2),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(tail.len(), 2);
    assert_eq!(tail[0].content, b"l8\n");
    let since = read(
        &path,
        &LogOptions {
            since: Some(at(7)),
            tail: Some(100),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(since.len(), 3);
    assert_eq!(
        since[0].render(true),
        b"2023-11-14T22:13:27.000000123Z l7\n".to_vec()
    );
    assert_eq!(since[0].render(false), b"l7\n".to_vec());
}

#[tokio::test]
async fn follow_streams_new_lines_across_rotation_until_finished() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let rotation = Rotation {
        max_size: 120,
        max_files: 2,
    };
    let mut w = LogWriter::open(&path, rotation).unwrap();
    w.write_line(Stream::Stdout, b"before", true, at(0))
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(100);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done2 = done.clone();
    let task = tokio::spawn(follow(path.clone(), LogOptions::default(), tx, move || {
        done2.load(std::sync::atomic::Ordering::SeqCst)
    }));
    assert_eq!(rx.recv().await.unwrap(), b"before\n");
    for i in 0..6 {
        w.write_line(Stream::Stdout, format!("after {i}").as_bytes(), true, at(i))
            .unwrap();
        assert_eq!(
            rx.recv().await.unwrap(),
            format!("after {i}\n").into_bytes()
        );
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    task.await.unwrap().unwrap();
    assert!(rx.recv().await.is_none());
}

#[tokio::test]
async fn follow_catches_up_when_several_rotations_happen_between_polls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let rotation = Rotation {
        max_size: 150,
        max_files: 10,
    };
    let mut w = LogWriter::open(&path, rotation).unwrap();
    w.write_line(Stream::Stdout, b"first", true, at(0)).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(100);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done2 = done.clone();
    let task = tokio::spawn(follow(path.clone(), LogOptions::default(), tx, move || {
        done2.load(std::sync::atomic::Ordering::SeqCst)
    }));
    assert_eq!(rx.recv().await.unwrap(), b"first\n");
    // One burst: several rotations before the follower looks again.
    for i in 0..12 {
        w.write_line(Stream::Stdout, format!("burst {i}").as_bytes(), true, at(i))
            .unwrap();
    }
    assert!(rotated(&path, 3).exists());
    for i in 0..12 {
        assert_eq!(
            rx.recv().await.unwrap(),
            format!("burst {i}\n").into_bytes()
        );
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    task.await.unwrap().unwrap();
}

#[test]
fn pod_log_paths_follow_the_kubelet_layout() {
    let p = pod_log_path(Path::new("/l"), "default", "web", "u1", "nginx", 2);
    assert_eq!(p, Path::new("/l/default_web_u1/nginx/2.log"));
}
