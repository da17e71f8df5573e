//! The `talos.config=` kernel parameter written into a stock image's `grub/grub.cfg`.

/// Why grub.cfg could not be changed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrubError {
    /// No `linux` line to add the parameter to.
    #[error("grub.cfg has no kernel (`linux`) line")]
    NoKernelLine,
}

/// GRUB's own commands that load a kernel.
const KERNEL_COMMANDS: [&str; 3] = ["linux", "linuxefi", "linux16"];

/// Adds `talos.config=<url>` to every kernel line of `grub_cfg`, replacing any existing
/// `talos.config=` there, and leaves every other byte as it was.
///
/// Characters GRUB's script parser would act on (`$`, `;`, `&`, `|`, `<`, `>`, quotes and `\`)
/// are escaped with `\`, so `${uuid}` reaches the kernel command line as written and Talos
/// fills it in.
///
/// ```
/// use talos_manager_core::installer::inject_talos_config;
///
/// let cfg = "menuentry A {\n  linux /A/vmlinuz console=tty0\n}\n";
/// let out = inject_talos_config(cfg, "https://tm.example/config?uuid=${uuid}").unwrap();
/// assert_eq!(out, "menuentry A {\n  linux /A/vmlinuz console=tty0 talos.config=https://tm.example/config?uuid=\\${uuid}\n}\n");
/// ```
pub fn inject_talos_config(grub_cfg: &str, url: &str) -> Result<String, GrubError> {
    let parameter = format!("talos.config={}", escape(url));
    let mut out = String::with_capacity(grub_cfg.len() + 256);
    let mut kernel_lines = 0;
    for line in grub_cfg.split_inclusive('\n') {
        let (body, ending) = split_line_ending(line);
        let first_word = body.split_whitespace().next().unwrap_or("");
        if !KERNEL_COMMANDS.contains(&first_word) {
            out.push_str(line);
            continue;
        }
        kernel_lines += 1;
        let kept = remove_talos_config(body);
        let trimmed = kept.trim_end();
        out.push_str(trimmed);
        out.push(' ');
        out.push_str(&parameter);
        out.push_str(&kept[trimmed.len()..]);
        out.push_str(ending);
    }
    if kernel_lines == 0 {
        return Err(GrubError::NoKernelLine);
    }
    Ok(out)
}

fn split_line_ending(line: &str) -> (&str, &str) {
    let body = line.trim_end_matches(['\n', '\r']);
    (body, &line[body.len()..])
}

/// The line without its `talos.config=…` words (each with the blank before it).
fn remove_talos_config(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while !rest.is_empty() {
        let blank_len = rest.len() - rest.trim_start().len();
        let (blank, after_blank) = rest.split_at(blank_len);
        let word_len = after_blank
            .find(char::is_whitespace)
            .unwrap_or(after_blank.len());
        let (word, after_word) = after_blank.split_at(word_len);
        if !word.starts_with("talos.config=") {
            out.push_str(blank);
            out.push_str(word);
        }
        rest = after_word;
    }
    out
}

fn escape(url: &str) -> String {
    let mut out = String::with_capacity(url.len() + 8);
    for c in url.chars() {
        if matches!(c, '$' | ';' | '&' | '|' | '<' | '>' | '"' | '\'' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://tm.example/config?uuid=${uuid}";

    #[test]
    fn every_kernel_line_gets_the_parameter_and_nothing_else_changes() {
        let cfg = "set default=0\r\nmenuentry \"A - ${x}\" {\r\n\tlinux /A/vmlinuz init_on_alloc=1 talos.platform=metal\r\n\tinitrd /A/initramfs.xz\r\n}\r\nmenuentry B {\r\n  linux /B/vmlinuz talos.config=http://old/${uuid}   quiet  \r\n}\r\n";
        let out = inject_talos_config(cfg, URL).unwrap();
        assert_eq!(
            out,
            "set default=0\r\nmenuentry \"A - ${x}\" {\r\n\tlinux /A/vmlinuz init_on_alloc=1 talos.platform=metal talos.config=https://tm.example/config?uuid=\\${uuid}\r\n\tinitrd /A/initramfs.xz\r\n}\r\nmenuentry B {\r\n  linux /B/vmlinuz   quiet talos.config=https://tm.example/config?uuid=\\${uuid}  \r\n}\r\n"
        );
        // Idempotent: a second run changes nothing.
        assert_eq!(inject_talos_config(&out, URL).unwrap(), out);
    }

    #[test]
    fn refuses_a_config_without_kernel_lines() {
        assert_eq!(
            inject_talos_config("set timeout=3\n", URL),
            Err(GrubError::NoKernelLine)
        );
    }

    #[test]
    fn escapes_grub_metacharacters() {
        assert_eq!(escape("a?b=1&c=$d;e"), r"a?b=1\&c=\$d\;e");
    }
}
