//! Runs the fake Hetzner Robot and Cloud APIs on loopback until Ctrl-C, so talos-manager can be
//! tried offline: point `HETZNER_ROBOT_API_URL` and `HETZNER_CLOUD_API_URL` at the printed URLs.
//!
//! `cargo run -p talos-manager-fake-hetzner -- [N_SERVERS]` adds N generated servers to each
//! fake (default 10) on top of the fixture-seeded ones.

use talos_manager_fake_hetzner::{FakeCloud, FakeRobot};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let n_servers: usize = match std::env::args().nth(1) {
        Some(text) => text.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("not a number: {text}"),
            )
        })?,
        None => 10,
    };
    let robot = FakeRobot::start().await?;
    let cloud = FakeCloud::start().await?;
    robot.generate_servers(n_servers);
    cloud.generate_servers(n_servers);
    #[allow(clippy::print_stdout)]
    {
        println!("HETZNER_ROBOT_API_URL={}", robot.url());
        println!("HETZNER_WEBSERVICE_USER={}", FakeRobot::USER);
        println!("HETZNER_WEBSERVICE_PASSWORD={}", FakeRobot::PASSWORD);
        println!("HETZNER_CLOUD_API_URL={}", cloud.url());
        println!("HETZNER_CLOUD_API_TOKEN={}", FakeCloud::TOKEN);
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
