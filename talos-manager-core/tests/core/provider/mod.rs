//! Hetzner Robot and Cloud clients against the wire-level fakes on loopback: every call, each
//! quirk of the real APIs, and injected faults.

mod cloud;
mod robot;

use std::time::Duration;

use talos_manager_core::{RetryPolicy, SshPublicKey};

/// Our key; its MD5 fingerprint as `ssh-keygen -l -E md5` prints it is [`OUR_FINGERPRINT`].
const OUR_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH9uR4m5+mneWPpJTHO9a+r1GCrFW/Q10j4Q4myNRRJ1 talos-manager@test";
const OUR_FINGERPRINT: &str = "3c:41:03:c3:b4:6a:f4:30:9d:cd:30:03:49:28:17:4c";
/// Someone else's key.
const OTHER_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQD4BCeLhkpT7Sf8FqMZFNlgu9sBbllR0XkvA+xWR1wS2D5xZUDc2eTztUB75lsIJBDF5FC2reN1YLWLTMHfX6Hy03wbNg4sM+pN1Xbli0dUtmS0mGQMofVoaTiCFsw1aM7VIScRPfOjfJU4wZx8kP1KiwbiJPDB1s2Sdmm4RlMNnt71b5TZd0J/51KQKkr2rhfObSGyI7Dvqiya2joQbVTvH5aBiMNmEefqY6GPrDCeMaCApO3KfyrZHCHkn/bNAQCEuZPvU4mNAyzYvBEH7EAH0TycWMVyEg5Bbkvu/yk7UpGFtRIU0S69JVDGs1TmLfUA5Qv7HinHR45/fMJHwtXz other@test";

fn our_key() -> SshPublicKey {
    SshPublicKey::parse(OUR_KEY).unwrap()
}

/// Millisecond back-off, and a request timeout short enough for the "slow" fault.
fn policy() -> RetryPolicy {
    RetryPolicy {
        request_timeout: Duration::from_millis(500),
        ..RetryPolicy::for_fakes()
    }
}
