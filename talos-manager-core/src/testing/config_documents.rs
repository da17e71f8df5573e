//! The documents of a served machine config, read the way a test asserts on them: the
//! v1alpha1 document, a typed document by kind (Talos 1.12 and newer), and the install disk and
//! hostname wherever the config's Talos version writes them.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Every document of the multi-document YAML `text`, in order, as JSON values.
///
/// # Panics
/// When a document is not YAML.
pub fn documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("a YAML document"))
        .collect()
}

/// The first document of a served machine config (the v1alpha1 one; Talos 1.12 and newer
/// configs have more documents after it).
///
/// # Panics
/// When there is no document or it is not a `T`.
pub fn v1alpha1_document<T: DeserializeOwned>(text: &str) -> T {
    let first = serde_norway::Deserializer::from_str(text)
        .next()
        .expect("a YAML document");
    T::deserialize(first).expect("the v1alpha1 document")
}

/// The document of `kind` in a served multi-document machine config (Talos 1.12 and newer).
///
/// # Panics
/// When a document is not YAML.
pub fn typed_document(text: &str, kind: &str) -> Option<Value> {
    documents(text).into_iter().find(|doc| doc["kind"] == kind)
}

/// The disk a served machine config installs Talos to, whatever the Talos version: the
/// `UnattendedInstallConfig` document's disk selector (`disk.dev_path == "…"`, Talos 1.14 and
/// newer), else `machine.install.disk`.
pub fn node_install_disk(text: &str) -> Option<String> {
    if let Some(install) = typed_document(text, "UnattendedInstallConfig") {
        let selector = install["provisioning"]["diskSelector"]["match"].as_str()?;
        let path = selector
            .strip_prefix("disk.dev_path == \"")?
            .strip_suffix('"')?;
        return Some(path.to_owned());
    }
    let config: Value = v1alpha1_document(text);
    config["machine"]["install"]["disk"]
        .as_str()
        .map(str::to_owned)
}

/// The hostname a served machine config gives its node, whatever the Talos version: the
/// `HostnameConfig` document's (Talos 1.12 and newer), else `machine.network.hostname`.
pub fn node_hostname(text: &str) -> Option<String> {
    let documents = documents(text);
    documents
        .iter()
        .find(|doc| doc["kind"] == "HostnameConfig")
        .map(|doc| &doc["hostname"])
        .or_else(|| {
            documents
                .first()
                .map(|doc| &doc["machine"]["network"]["hostname"])
        })
        .and_then(|hostname| hostname.as_str().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::{node_hostname, node_install_disk, typed_document};

    #[test]
    fn reads_the_install_disk_and_hostname_of_either_form() {
        let legacy = "machine:\n  install:\n    disk: /dev/sda\n  network:\n    hostname: w-1\n";
        assert_eq!(node_install_disk(legacy).as_deref(), Some("/dev/sda"));
        assert_eq!(node_hostname(legacy).as_deref(), Some("w-1"));
        let typed = "machine: {}\n---\napiVersion: v1alpha1\nkind: HostnameConfig\nhostname: w-2\n\
                     ---\napiVersion: v1alpha1\nkind: UnattendedInstallConfig\nprovisioning:\n  \
                     diskSelector:\n    match: disk.dev_path == \"/dev/nvme0n1\"\n";
        assert_eq!(node_install_disk(typed).as_deref(), Some("/dev/nvme0n1"));
        assert_eq!(node_hostname(typed).as_deref(), Some("w-2"));
        assert!(typed_document(typed, "KubeletConfig").is_none());
    }
}
