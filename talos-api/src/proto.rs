//! The generated messages and stubs of our `proto/` files, one module per protobuf package
//! (`common`, `machine`, `cosi::resource`, `google::rpc`). Client stubs always; server stubs
//! (`*_server` modules) with the crate's `server` feature, for the fake Talos API server.
#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

use std::fmt;

/// `common`: metadata, byte chunks, containerd instances.
pub mod common {
    tonic::include_proto!("common");
}

/// `machine`: `MachineService`, `ImageService`, `LifecycleService`.
pub mod machine {
    tonic::include_proto!("machine");
}

/// `cosi.resource`: the COSI `State` service.
pub mod cosi {
    /// `cosi.resource`.
    pub mod resource {
        tonic::include_proto!("cosi.resource");
    }
}

/// `google.rpc`: the error status in response metadata.
pub mod google {
    /// `google.rpc`.
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

impl fmt::Debug for machine::ApplyConfigurationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `data` is a machine config: secrets inside.
        f.debug_struct("ApplyConfigurationRequest")
            .field(
                "data",
                &format_args!("<{} bytes redacted>", self.data.len()),
            )
            .field("mode", &self.mode())
            .field("dry_run", &self.dry_run)
            .finish()
    }
}

impl fmt::Debug for common::Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `bytes` may be an admin kubeconfig: a client key inside.
        f.debug_struct("Data")
            .field("metadata", &self.metadata)
            .field(
                "bytes",
                &format_args!("<{} bytes redacted>", self.bytes.len()),
            )
            .finish()
    }
}
