//! Schematic bodies: forcing the `talos.config=` kernel argument into
//! `customization.extraKernelArgs`.

use serde_norway::{Mapping, Value};

use crate::Issue;

/// The prefix of the kernel argument that tells Talos where to fetch its machine config.
pub const TALOS_CONFIG_ARG_PREFIX: &str = "talos.config=";

/// A schematic body that could not be read or has the wrong shape.
#[derive(Debug, thiserror::Error)]
pub enum SchematicBodyError {
    /// The body is not YAML (JSON is YAML too).
    #[error("schematic body is not valid yaml")]
    InvalidYaml {
        /// What the YAML parser reported.
        #[source]
        source: serde_norway::Error,
    },
    /// A value that must be a mapping is something else.
    #[error("{path} must be a mapping")]
    NotAMapping {
        /// Where, as a dotted path (`customization`); `.` for the whole body.
        path: String,
    },
    /// A value that must be a list of strings is something else.
    #[error("{path} must be a list of strings")]
    NotAListOfStrings {
        /// Where, as a dotted path (`customization.extraKernelArgs`).
        path: String,
    },
    /// The body could not be written back as YAML.
    #[error("schematic body could not be serialised")]
    Serialise {
        /// What the YAML serialiser reported.
        #[source]
        source: serde_norway::Error,
    },
}

impl SchematicBodyError {
    /// The problem as an [`Issue`], with the path it is at.
    pub fn issue(&self) -> Issue {
        match self {
            SchematicBodyError::InvalidYaml { source } => {
                Issue::new("body", format!("is not valid yaml: {source}"))
            }
            SchematicBodyError::NotAMapping { path } => Issue::new(path, "must be a mapping"),
            SchematicBodyError::NotAListOfStrings { path } => {
                Issue::new(path, "must be a list of strings")
            }
            SchematicBodyError::Serialise { source } => {
                Issue::new("body", format!("could not be serialised: {source}"))
            }
        }
    }
}

/// The `talos.config=` kernel argument for a config URL.
pub fn talos_config_arg(config_url: &str) -> String {
    format!("{TALOS_CONFIG_ARG_PREFIX}{config_url}")
}

/// Returns `body` (YAML or JSON) with `talos.config=<config_url>` in
/// `customization.extraKernelArgs`: an existing `talos.config=` entry is replaced in place (and
/// any further ones dropped), otherwise the argument is appended. Every other key and argument
/// is kept in its order. An empty body counts as `{}`. The result is YAML.
pub fn force_talos_config(body: &str, config_url: &str) -> Result<String, SchematicBodyError> {
    let mut root: Value = if body.trim().is_empty() {
        Value::Mapping(Mapping::new())
    } else {
        serde_norway::from_str(body).map_err(|source| SchematicBodyError::InvalidYaml { source })?
    };
    if root.is_null() {
        root = Value::Mapping(Mapping::new());
    }
    let Value::Mapping(top) = &mut root else {
        return Err(SchematicBodyError::NotAMapping { path: ".".into() });
    };
    let customization = top
        .entry(Value::String("customization".into()))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if customization.is_null() {
        *customization = Value::Mapping(Mapping::new());
    }
    let Value::Mapping(customization) = customization else {
        return Err(SchematicBodyError::NotAMapping {
            path: "customization".into(),
        });
    };
    let args_path = "customization.extraKernelArgs";
    let args = customization
        .entry(Value::String("extraKernelArgs".into()))
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if args.is_null() {
        *args = Value::Sequence(Vec::new());
    }
    let Value::Sequence(args) = args else {
        return Err(SchematicBodyError::NotAListOfStrings {
            path: args_path.into(),
        });
    };
    if args.iter().any(|arg| !arg.is_string()) {
        return Err(SchematicBodyError::NotAListOfStrings {
            path: args_path.into(),
        });
    }
    let wanted = Value::String(talos_config_arg(config_url));
    let is_config_arg = |arg: &Value| {
        arg.as_str()
            .is_some_and(|s| s.starts_with(TALOS_CONFIG_ARG_PREFIX))
    };
    match args.iter().position(is_config_arg) {
        Some(first) => {
            args[first] = wanted;
            let mut index = 0;
            args.retain(|arg| {
                let keep = index <= first || !is_config_arg(arg);
                index += 1;
                keep
            });
        }
        None => args.push(wanted),
    }
    serde_norway::to_string(&root).map_err(|source| SchematicBodyError::Serialise { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://manager.example.com/config?uuid=${uuid}";

    fn args(yaml: &str) -> Vec<String> {
        let value: Value = serde_norway::from_str(yaml).unwrap();
        value["customization"]["extraKernelArgs"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn empty_body_gets_the_argument() {
        for body in ["", "{}", "customization: {}", "customization:\n", "null"] {
            let out = force_talos_config(body, URL).unwrap();
            assert_eq!(args(&out), [format!("talos.config={URL}")], "{body:?}");
        }
    }

    #[test]
    fn existing_argument_is_replaced_and_the_rest_kept() {
        let body = "overlay:\n  image: x\n  name: y\ncustomization:\n  extraKernelArgs:\n    - noapic\n    - talos.config=https://old/config\n    - nolapic\n    - talos.config=https://older\n  systemExtensions:\n    officialExtensions:\n      - siderolabs/amd-ucode\n";
        let out = force_talos_config(body, URL).unwrap();
        assert_eq!(
            args(&out),
            ["noapic", &format!("talos.config={URL}"), "nolapic"]
        );
        let value: Value = serde_norway::from_str(&out).unwrap();
        assert_eq!(value["overlay"]["name"].as_str(), Some("y"));
        assert_eq!(
            value["customization"]["systemExtensions"]["officialExtensions"][0].as_str(),
            Some("siderolabs/amd-ucode")
        );
        // Key order is kept.
        assert!(out.find("overlay").unwrap() < out.find("customization").unwrap());
    }

    #[test]
    fn json_body_is_accepted() {
        let out =
            force_talos_config(r#"{"customization":{"extraKernelArgs":["a"]}}"#, URL).unwrap();
        assert_eq!(args(&out), ["a".to_owned(), format!("talos.config={URL}")]);
    }

    #[test]
    fn wrong_shapes_name_their_path() {
        let cases = [
            ("- a\n- b\n", "."),
            ("just text", "."),
            ("customization: [1]", "customization"),
            ("customization: text", "customization"),
            (
                "customization:\n  extraKernelArgs: text",
                "customization.extraKernelArgs",
            ),
            (
                "customization:\n  extraKernelArgs: [1, 2]",
                "customization.extraKernelArgs",
            ),
            (
                "customization:\n  extraKernelArgs: {a: b}",
                "customization.extraKernelArgs",
            ),
        ];
        for (body, path) in cases {
            let error = force_talos_config(body, URL).unwrap_err();
            assert_eq!(error.issue().path, path, "{body:?}: {error}");
        }
        let error = force_talos_config("a: [", URL).unwrap_err();
        assert!(matches!(error, SchematicBodyError::InvalidYaml { .. }));
        assert_eq!(error.issue().path, "body");
    }
}
