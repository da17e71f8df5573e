//! `${name}` variables in patches, replaced by a server's values before the patches are loaded.
//!
//! Replacement is plain text substitution, as the original app did, so a variable works
//! anywhere in a patch (keys, values, inside strings). Variables without a value here —
//! unknown names, or known ones not set for this server — are left as they are; callers that
//! want to reject them can list them with [`unknown_variables`].

/// Values for the `${…}` variables of patches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Substitutions {
    vars: Vec<(String, String)>,
}

impl Substitutions {
    /// No variables.
    pub fn new() -> Substitutions {
        Substitutions::default()
    }

    /// Sets a variable (its name without `${` `}`); a later value for the same name wins.
    pub fn set(mut self, name: impl Into<String>, value: impl Into<String>) -> Substitutions {
        let name = name.into();
        self.vars.retain(|(n, _)| *n != name);
        self.vars.push((name, value.into()));
        self
    }

    /// `${hostname}`.
    pub fn hostname(self, value: impl Into<String>) -> Substitutions {
        self.set("hostname", value)
    }

    /// `${private_ip}`.
    pub fn private_ip(self, value: impl Into<String>) -> Substitutions {
        self.set("private_ip", value)
    }

    /// `${public_ip}`.
    pub fn public_ip(self, value: impl Into<String>) -> Substitutions {
        self.set("public_ip", value)
    }

    /// `${vlan}`.
    pub fn vlan(self, value: impl Into<String>) -> Substitutions {
        self.set("vlan", value)
    }

    /// `${bootstrap_disk_wwid}`.
    pub fn bootstrap_disk_wwid(self, value: impl Into<String>) -> Substitutions {
        self.set("bootstrap_disk_wwid", value)
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Replaces every `${name}` that has a value in `vars`; other `${…}` stay untouched.
pub fn substitute(template: &str, vars: &Substitutions) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}').map(|end| (&after[..end], end)) {
            Some((name, end)) if vars.value(name).is_some() => {
                out.push_str(vars.value(name).unwrap_or_default());
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The names of `${…}` variables in `text` that `vars` has no value for, in order of first
/// appearance.
pub fn unknown_variables(text: &str, vars: &Substitutions) -> Vec<String> {
    let mut unknown: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if vars.value(name).is_none() && !unknown.iter().any(|u| u == name) {
            unknown.push(name.to_owned());
        }
        rest = &after[end + 1..];
    }
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_substitution(template: &str, vars: &Substitutions, expect: &str) {
        assert_eq!(substitute(template, vars), expect);
    }

    #[test]
    fn replaces_known_and_keeps_unknown() {
        let vars = Substitutions::new()
            .hostname("worker-1")
            .vlan("1337")
            .private_ip("10.0.1.1");
        check_substitution("hostname: ${hostname}", &vars, "hostname: worker-1");
        check_substitution(
            "vlanId: ${vlan}\n- ${private_ip}/21",
            &vars,
            "vlanId: 1337\n- 10.0.1.1/21",
        );
        check_substitution("a: ${public_ip} ${uuid}", &vars, "a: ${public_ip} ${uuid}");
        check_substitution("${hostname}${hostname}", &vars, "worker-1worker-1");
        check_substitution("broken ${hostname", &vars, "broken ${hostname");
        assert_eq!(
            unknown_variables("${public_ip} ${uuid} ${hostname} ${uuid}", &vars),
            ["public_ip", "uuid"]
        );
    }
}
