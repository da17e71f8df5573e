//! Embeds talos-manager's storage in a Rust program: open an SQLite database, record a cluster
//! with its (encrypted) secrets bundle and a config template, and read them back.
//!
//! Run: `cargo run -p talos-manager-examples --example embed_store [DATABASE_URL]`
//! (default: a new SQLite file in a temporary directory).

use anyhow::Context as _;
use talos_manager_core::Secret;
use talos_manager_core::store::{ClusterFields, ConfigFields, EncryptionKey, Store};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("talos-manager-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("example.db").display()));

    // In a real deployment the key comes from TALOS_MANAGER_ENCRYPTION_KEY.
    let key = EncryptionKey::generate();
    let store = Store::connect(&url, &key)
        .await
        .context("open the database")?;
    store.migrate().await.context("migrate the database")?;

    let cluster = store
        .create_cluster(
            &ClusterFields {
                name: "example".into(),
                endpoint: "https://example.internal:6443".into(),
                vswitch_id: None,
            },
            &Secret::new("cluster:\n  id: example\n".into()),
        )
        .await
        .context("create the cluster")?;
    let config = store
        .create_config(&ConfigFields {
            name: "workers".into(),
            install_image: "ghcr.io/siderolabs/installer:v1.10.4".into(),
            kubernetes_version: "1.30.1".into(),
            kubespan: true,
            patch: "machine:\n  sysctls:\n    vm.max_map_count: \"262144\"\n".into(),
            patch_control_plane: String::new(),
            patch_worker: String::new(),
        })
        .await
        .context("create the config")?;

    let secrets = store.cluster_secrets(cluster.id).await?;
    eprintln!(
        "cluster {} ({}) with secrets {secrets}; config {} installs {}",
        cluster.name, cluster.endpoint, config.fields.name, config.fields.install_image
    );
    assert_eq!(store.list_clusters().await?.len(), 1);
    store.close().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
