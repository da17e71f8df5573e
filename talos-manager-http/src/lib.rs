//! The talos-manager service, as a library so tests build the same app as the binary.
