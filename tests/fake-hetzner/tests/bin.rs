//! The `fake-hetzner` binary starts both fakes on loopback and prints how to reach them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

/// Kills the child when the test ends, whatever happened.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn prints_working_urls_and_credentials() {
    let child = Command::new(env!("CARGO_BIN_EXE_fake-hetzner"))
        .arg("3")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let stdout = running.0.stdout.take().unwrap();
    let lines: Vec<String> = BufReader::new(stdout)
        .lines()
        .take(5)
        .map(Result::unwrap)
        .collect();
    let names: Vec<&str> = lines
        .iter()
        .map(|line| line.split('=').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "HETZNER_ROBOT_API_URL",
            "HETZNER_WEBSERVICE_USER",
            "HETZNER_WEBSERVICE_PASSWORD",
            "HETZNER_CLOUD_API_URL",
            "HETZNER_CLOUD_API_TOKEN"
        ]
    );
    let robot_url = lines[0].split_once('=').unwrap().1;
    let address = robot_url
        .strip_prefix("http://127.0.0.1:")
        .map(|port| format!("127.0.0.1:{port}"));
    let mut stream = TcpStream::connect(address.expect("a loopback URL")).unwrap();
    stream
        .write_all(b"GET /server HTTP/1.1\r\nHost: fake\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        lines[3].starts_with("HETZNER_CLOUD_API_URL=http://127.0.0.1:")
            && lines[3].ends_with("/v1")
    );
}
