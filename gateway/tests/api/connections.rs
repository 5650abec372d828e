//! Kept-alive connections, byte by byte: a client that sends its headers and its body in
//! two writes (Python's http.client does) must never find a silently closed connection.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::spawn_app;
use gateway::auth::Role;

/// One answer read off the socket: status, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Reads one HTTP/1.1 answer with a Content-Length body, leaving the connection usable.
async fn read_answer(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Answer {
    let header_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut chunk))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        assert!(read > 0, "the connection closed before an answer");
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8(buffer[..header_end].to_vec()).expect("ascii head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .expect("a content-length");
    while buffer.len() < header_end + length {
        let mut chunk = [0u8; 4096];
        let read = socket.read(&mut chunk).await.expect("read");
        assert!(read > 0, "the connection closed inside a body");
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = buffer[header_end..header_end + length].to_vec();
    buffer.drain(..header_end + length);
    Answer {
        status,
        headers,
        body,
    }
}

/// Sends a Buy Now's head, waits, then its body: two writes, as slow clients do.
async fn buy_in_two_writes(
    socket: &mut TcpStream,
    token: Option<&str>,
    body: &[u8],
    declared_length: usize,
    key: &str,
) {
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST /api/v1/buy-now HTTP/1.1\r\nHost: engine\r\nContent-Type: application/json\r\n\
         Idempotency-Key: {key}\r\n{authorization}Content-Length: {declared_length}\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.expect("head sent");
    socket.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(30)).await;
    // The server may have answered and closed already; what it said is what is checked.
    let _ = socket.write_all(body).await;
}

#[tokio::test]
async fn an_answer_given_before_the_body_was_read_says_connection_close() {
    let app = spawn_app().await;
    app.create_product(1, 100, 100).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let body = br#"{"productId":1,"quantity":1}"#;

    // A token the engine refuses: 401 before the body, so the connection is closed, and
    // the answer says so.
    let mut socket = TcpStream::connect(&address).await.expect("connect");
    let mut buffer = Vec::new();
    buy_in_two_writes(&mut socket, None, body, body.len(), "no-token").await;
    let answer = read_answer(&mut socket, &mut buffer).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.header("connection"), Some("close"));
    let error: serde_json::Value = serde_json::from_slice(&answer.body).expect("json error");
    assert_eq!(error["error"]["code"], "unauthorized");

    // A body over the 16 KiB limit: 413 once the limit is passed, the rest unread, so the
    // connection is closed, and the answer says so.
    let token = app.token(3, Role::Customer);
    let mut socket = TcpStream::connect(&address).await.expect("connect");
    let mut buffer = Vec::new();
    let huge = vec![b' '; 64 * 1024];
    buy_in_two_writes(&mut socket, Some(&token), &huge, huge.len(), "too-big").await;
    let answer = read_answer(&mut socket, &mut buffer).await;
    assert_eq!(answer.status, 413);
    assert_eq!(answer.header("connection"), Some("close"));

    // A request whose body was read keeps its connection: two Buy Nows in two writes each,
    // on one connection, both served.
    let mut socket = TcpStream::connect(&address).await.expect("connect");
    let mut buffer = Vec::new();
    for key in ["kept-1", "kept-2"] {
        buy_in_two_writes(&mut socket, Some(&token), body, body.len(), key).await;
        let answer = read_answer(&mut socket, &mut buffer).await;
        assert_eq!(
            answer.status,
            201,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(answer.header("connection"), None);
    }
    // And a 4xx after reading the body (a bad quantity) keeps it too.
    let bad = br#"{"productId":1,"quantity":0}"#;
    buy_in_two_writes(&mut socket, Some(&token), bad, bad.len(), "bad").await;
    let answer = read_answer(&mut socket, &mut buffer).await;
    assert_eq!(answer.status, 422);
    assert_eq!(answer.header("connection"), None);
    buy_in_two_writes(&mut socket, Some(&token), body, body.len(), "kept-3").await;
    assert_eq!(read_answer(&mut socket, &mut buffer).await.status, 201);
    app.stop().await;
}
