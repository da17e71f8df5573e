//! Replays the fuzz targets' seeds and every saved failing input (`fuzz/regressions/<target>/`)
//! through the functions the targets call (`talos_manager_core::testing::fuzz`), so a fixed
//! finding stays fixed without running the fuzzer.

use std::path::{Path, PathBuf};

use talos_manager_core::testing::fuzz::TARGETS;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files_under(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, found);
        } else if path.file_name().is_some_and(|name| name != "README.md") {
            found.push(path);
        }
    }
}

/// The inputs of `target`: its seed folders from `fuzz/seeds.txt` and its regressions.
fn inputs(target: &str) -> Vec<PathBuf> {
    let root = repository();
    let seeds = std::fs::read_to_string(root.join("fuzz/seeds.txt")).unwrap();
    let mut found = Vec::new();
    for line in seeds.lines().filter(|line| !line.starts_with('#')) {
        if let Some((name, folder)) = line.split_once(' ')
            && name == target
        {
            let folder = root.join(folder.trim());
            assert!(
                folder.is_dir(),
                "fuzz/seeds.txt names {folder:?}, which is gone"
            );
            files_under(&folder, &mut found);
        }
    }
    files_under(&root.join("fuzz/regressions").join(target), &mut found);
    found
}

#[test]
fn every_seed_and_saved_finding_passes_its_fuzz_target() {
    let declared = std::fs::read_dir(repository().join("fuzz/fuzz_targets"))
        .unwrap()
        .map(|entry| {
            entry
                .unwrap()
                .file_name()
                .to_string_lossy()
                .replace(".rs", "")
        })
        .collect::<std::collections::BTreeSet<_>>();
    let replayed = TARGETS
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(declared, replayed, "every fuzz target is replayed here");
    for (name, body) in TARGETS {
        let inputs = inputs(name);
        assert!(inputs.len() >= 3, "{name} has seeds: {inputs:?}");
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            let outcome = std::panic::catch_unwind(|| body(&data));
            assert!(outcome.is_ok(), "fuzz target {name} fails on {input:?}");
        }
    }
}
