//! End-to-end: a container's stdio through its shim's attach socket (`kubectl attach`
//! below the API): stdin to a pipe kept open across clients, output fanned out to every
//! client, a terminal with resizes, stdinOnce, and the end of the session at the exit.
//! Needs root and runc; skips otherwise.

mod common;

use skiff_node::runtime::shim::{self, FRAME_HEADER, RESIZE, STDIN, STDIN_CLOSE, STDOUT};
use skiff_node::runtime::{Runtime, Stdio};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Frames from the shim until one's text contains `marker` (the output so far), or `None`
/// at the end of the stream.
fn read_until(conn: &mut UnixStream, marker: &str) -> Option<String> {
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut text = String::new();
    loop {
        let mut header = [0u8; FRAME_HEADER];
        if conn.read_exact(&mut header).is_err() {
            return None;
        }
        let (kind, len) = shim::parse_header(header).expect("sane frame");
        let mut data = vec![0u8; len];
        conn.read_exact(&mut data).expect("frame data");
        assert_eq!(kind, STDOUT, "output of a container writing stdout");
        text.push_str(&String::from_utf8_lossy(&data));
        if text.contains(marker) {
            return Some(text);
        }
    }
}

fn attach(node: &common::Node, id: &str) -> UnixStream {
    let socket = node.runtime.attach_socket(id).expect("attach socket");
    shim::connect(&socket).expect("connect")
}

#[test]
fn stdin_reaches_the_process_and_output_reaches_every_client() {
    let node = node_or_skip!();
    let pod = node.sandbox("attach");
    let mut spec = node.spec(
        "echo",
        &pod,
        &[
            "sh",
            "-c",
            "while read l; do echo got-$l; done; echo stdin-closed",
        ],
    );
    spec.stdio = Stdio {
        stdin: true,
        ..Default::default()
    };
    let id = node.run(&spec);
    let mut one = attach(&node, &id);
    let mut two = attach(&node, &id);
    one.write_all(&shim::frame(STDIN, b"hello\n"))
        .expect("send");
    assert!(read_until(&mut one, "got-hello").is_some());
    // Once `two` has been served (its input reached the process), it gets the output too.
    two.write_all(&shim::frame(STDIN, b"two\n")).expect("send");
    assert!(read_until(&mut two, "got-two").is_some());
    assert!(read_until(&mut one, "got-two").is_some(), "fanned out");
    // A client going (even closing its input) does not close stdin without stdinOnce.
    one.write_all(&shim::frame(STDIN_CLOSE, b"")).expect("send");
    drop(one);
    let mut three = attach(&node, &id);
    three
        .write_all(&shim::frame(STDIN, b"again\n"))
        .expect("send");
    assert!(read_until(&mut three, "got-again").is_some());
    // The log has it all, as before attach existed.
    let log = node.log_text(&spec);
    assert!(
        log.contains("got-hello") && log.contains("got-again"),
        "{log}"
    );
    assert_eq!(
        node.runtime.state(&id).expect("state").state,
        skiff_node::runtime::ContainerState::Running
    );
}

#[test]
fn stdin_once_closes_with_the_first_client_and_the_exit_ends_the_session() {
    let node = node_or_skip!();
    let pod = node.sandbox("once");
    let mut spec = node.spec("once", &pod, &["sh", "-c", "cat; echo eof-seen"]);
    spec.stdio = Stdio {
        stdin: true,
        stdin_once: true,
        tty: false,
    };
    let id = node.run(&spec);
    let mut conn = attach(&node, &id);
    conn.write_all(&shim::frame(STDIN, b"typed\n"))
        .expect("send");
    conn.write_all(&shim::frame(STDIN_CLOSE, b""))
        .expect("send");
    let text = read_until(&mut conn, "eof-seen").expect("output");
    assert!(text.contains("typed"), "{text}");
    // The container exited: the shim closes the client.
    assert_eq!(read_until(&mut conn, "never"), None);
    assert_eq!(node.wait_exit(&id, Duration::from_secs(10)).exit_code, 0);
}

#[test]
fn a_terminal_takes_input_and_resizes_and_the_shell_exit_ends_it() {
    let node = node_or_skip!();
    let pod = node.sandbox("tty");
    let mut spec = node.spec("tty", &pod, &["sh"]);
    spec.stdio = Stdio {
        stdin: true,
        stdin_once: false,
        tty: true,
    };
    let id = node.run(&spec);
    let mut conn = attach(&node, &id);
    let mut size = 100u16.to_be_bytes().to_vec();
    size.extend_from_slice(&37u16.to_be_bytes());
    conn.write_all(&shim::frame(RESIZE, &size)).expect("resize");
    conn.write_all(&shim::frame(
        STDIN,
        b"test -t 0 && echo tty-$((6*7)); stty size; exit 3\n",
    ))
    .expect("send");
    let text = read_until(&mut conn, "37 100").expect("output");
    assert!(text.contains("tty-42"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(10);
    assert_eq!(read_until(&mut conn, "never"), None, "closed at the exit");
    assert!(Instant::now() < deadline);
    assert_eq!(node.wait_exit(&id, Duration::from_secs(10)).exit_code, 3);
    // The terminal's output is the container's stdout in its log.
    assert!(node.log_text(&spec).contains("tty-42"));
}
