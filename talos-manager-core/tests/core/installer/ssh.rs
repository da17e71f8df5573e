//! SSH sessions: every key format, host key policies, timeouts, streamed output.

use std::time::Duration;

use talos_manager_core::installer::{
    Exit, HostKeys, RemoteShell, ShellError, SshError, SshSession, Stream, capture,
};

use super::harness::{KeyPair, Sshd};

#[tokio::test]
async fn connects_with_every_key_format_and_streams_output() {
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        KeyPair::generate(dir.path(), "rsa-pem", "-t rsa -b 2048 -m PEM"),
        KeyPair::generate(dir.path(), "rsa", "-t rsa -b 2048"),
        KeyPair::generate(dir.path(), "ecdsa", "-t ecdsa -b 256"),
        KeyPair::generate(dir.path(), "ed25519", "-t ed25519"),
    ];
    let sshd = Sshd::start(&keys.iter().collect::<Vec<_>>());
    for key in &keys {
        let debug = format!("{:?}", sshd.target(key));
        assert!(
            debug.contains("<redacted>") && !debug.contains("PRIVATE KEY"),
            "{debug}"
        );
        let session = SshSession::connect(&sshd.target(key))
            .await
            .unwrap_or_else(|e| panic!("{e:?}\nsshd log:\n{}", sshd.log()));
        let output = capture(
            &session,
            "echo out; echo err >&2; exit 3",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(
            (output.stdout.as_str(), output.stderr.as_str(), output.exit),
            ("out\n", "err\n", Exit::Status(3))
        );
        let mut chunks = Vec::new();
        let exit = session
            .exec(
                "printf a; printf b >&2",
                Duration::from_secs(10),
                &mut |stream, chunk| chunks.push((stream, chunk.to_vec())),
            )
            .await
            .unwrap();
        assert!(exit.success());
        assert!(
            chunks.contains(&(Stream::Stdout, b"a".to_vec())),
            "{chunks:?}"
        );
        assert!(
            chunks.contains(&(Stream::Stderr, b"b".to_vec())),
            "{chunks:?}"
        );
        session.close().await;
    }
}

#[tokio::test]
async fn refuses_a_key_the_server_does_not_know() {
    let dir = tempfile::tempdir().unwrap();
    let known = KeyPair::generate(dir.path(), "known", "-t ed25519");
    let stranger = KeyPair::generate(dir.path(), "stranger", "-t ed25519");
    let sshd = Sshd::start(&[&known]);
    let error = SshSession::connect(&sshd.target(&stranger))
        .await
        .unwrap_err();
    assert!(
        matches!(error, SshError::AuthenticationRejected { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "the rescue system refused our SSH key for user root"
    );
}

#[tokio::test]
async fn refuses_an_unreadable_key_without_showing_it() {
    let sshd_less_target = talos_manager_core::installer::SshTarget::new(
        "127.0.0.1",
        talos_manager_core::Secret::new("-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0\n".into()),
    );
    let error = SshSession::connect(&sshd_less_target).await.unwrap_err();
    assert!(
        matches!(error, SshError::InvalidPrivateKey { .. }),
        "{error:?}"
    );
    assert!(!format!("{error:?}").contains("c2VjcmV0"), "{error:?}");
}

#[tokio::test]
async fn host_keys_are_pinned_within_a_rescue_session() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(dir.path(), "key", "-t ed25519");
    let first = Sshd::start(&[&key]);
    let second = Sshd::start(&[&key]); // same address, new host key: a changed server

    // Expected fingerprints (the provider announced them).
    let mut target = first.target(&key);
    target.host_keys = HostKeys::expect([first.host_key_fingerprint.clone()]);
    SshSession::connect(&target).await.unwrap().close().await;
    // Or their MD5 form, as Hetzner writes fingerprints, with or without `MD5:`, any case.
    target.host_keys = HostKeys::expect([first.host_key_md5.to_uppercase()]);
    SshSession::connect(&target).await.unwrap().close().await;
    target.host_keys = HostKeys::expect([format!("MD5:{}", first.host_key_md5)]);
    SshSession::connect(&target).await.unwrap().close().await;
    target.host_keys = HostKeys::expect([second.host_key_md5.clone()]);
    let error = SshSession::connect(&target).await.unwrap_err();
    assert!(
        matches!(error, SshError::HostKeyNotExpected { .. }),
        "{error:?}"
    );
    target.host_keys = HostKeys::expect(["SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]);
    let error = SshSession::connect(&target).await.unwrap_err();
    assert!(
        matches!(error, SshError::HostKeyNotExpected { .. }),
        "{error:?}"
    );

    // Trust on first use, then refuse a change.
    let host_keys = HostKeys::trust_on_first_use();
    let mut target = first.target(&key);
    target.host_keys = host_keys.clone();
    SshSession::connect(&target).await.unwrap().close().await;
    assert_eq!(host_keys.pinned(), Some(first.host_key_fingerprint.clone()));
    let mut changed = second.target(&key);
    changed.host_keys = host_keys.clone();
    let error = SshSession::connect(&changed).await.unwrap_err();
    assert!(
        matches!(error, SshError::HostKeyChanged { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("host key changed within the rescue session"),
        "{error}"
    );
    // The first server is still welcome.
    SshSession::connect(&target).await.unwrap().close().await;
}

#[tokio::test]
async fn commands_and_connections_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(dir.path(), "key", "-t ed25519");
    let sshd = Sshd::start(&[&key]);
    let session = SshSession::connect(&sshd.target(&key)).await.unwrap();
    let error = capture(&session, "sleep 30", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(error, ShellError::Timeout { .. }), "{error:?}");
    // The session stays usable.
    let output = capture(&session, "echo still", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(output.stdout, "still\n");

    // A listener that never speaks SSH.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut target = sshd.target(&key);
    target.port = silent.local_addr().unwrap().port();
    target.connect_timeout = Duration::from_millis(500);
    let error = SshSession::connect(&target).await.unwrap_err();
    assert!(
        matches!(error, SshError::ConnectTimeout { .. }),
        "{error:?}"
    );
}
