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
/// Characters GRUB's script parser would act on (`$`, `{`, `}`, `;`, `&`, `|`, `<`, `>`, quotes
/// and `\`) are escaped with `\`, so `${uuid}` reaches the kernel command line as written and
/// Talos fills it in. The braces matter beyond GRUB: Talos reads grub.cfg back (kexec on every
/// reboot, the installer on every upgrade) and ends a menu entry at the first `}` without a `\`
/// before it; an unescaped `${uuid}` cut the entry before its `initrd` line and failed every
/// reboot and upgrade (`initrd: expected 1 match, got 0`), which is why the original app dropped
/// `?uuid=${uuid}` (docs/lifecycle.md). Escaped, the entry reads back whole, and Talos's
/// installer writes the argument back escaped the same way.
///
/// ```
/// use talos_manager_core::installer::inject_talos_config;
///
/// let cfg = "menuentry A {\n  linux /A/vmlinuz console=tty0\n}\n";
/// let out = inject_talos_config(cfg, "https://tm.example/config?uuid=${uuid}").unwrap();
/// assert_eq!(out, "menuentry A {\n  linux /A/vmlinuz console=tty0 talos.config=https://tm.example/config?uuid=\\$\\{uuid\\}\n}\n");
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
        if matches!(
            c,
            '$' | '{' | '}' | ';' | '&' | '|' | '<' | '>' | '"' | '\'' | '\\'
        ) {
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
            "set default=0\r\nmenuentry \"A - ${x}\" {\r\n\tlinux /A/vmlinuz init_on_alloc=1 talos.platform=metal talos.config=https://tm.example/config?uuid=\\$\\{uuid\\}\r\n\tinitrd /A/initramfs.xz\r\n}\r\nmenuentry B {\r\n  linux /B/vmlinuz   quiet talos.config=https://tm.example/config?uuid=\\$\\{uuid\\}  \r\n}\r\n"
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
        assert_eq!(escape("?uuid=${uuid}"), r"?uuid=\$\{uuid\}");
    }

    /// Talos's own reading of grub.cfg (its bootloader package, v1.13 and v1.14): a menu entry
    /// runs from `menuentry "…" {` to the first `}` with no `\` before it; its `linux` and
    /// `initrd` lines must both be inside, and the command line is unescaped (`\c` → `c` for
    /// the characters Talos quotes).
    fn talos_reads(cfg: &str) -> Vec<(String, bool)> {
        let mut entries = Vec::new();
        let mut rest = cfg;
        while let Some(start) = rest.find("menuentry ") {
            let after = &rest[start..];
            let open = after.find('{').unwrap();
            let bytes = after.as_bytes();
            let close = (open + 1..bytes.len())
                .find(|&i| bytes[i] == b'}' && bytes[i - 1] != b'\\')
                .unwrap();
            let mut block = after[open + 1..close].to_owned();
            for c in ['{', '}', '&', '$', '|', ';', '<', '>', '\\', '"'] {
                block = block.replace(&format!("\\{c}"), &c.to_string());
            }
            let linux = block
                .lines()
                .find(|l| l.trim_start().starts_with("linux "))
                .unwrap_or_default()
                .to_owned();
            let has_initrd = block.lines().any(|l| l.trim_start().starts_with("initrd "));
            entries.push((linux, has_initrd));
            rest = &after[close + 1..];
        }
        entries
    }

    #[test]
    fn talos_reads_every_entry_back_whole_with_the_uuid_placeholder() {
        let cfg = "set default=\"A - v1.13.9\"\nmenuentry \"A - v1.13.9\" {\n  set gfxmode=auto\n  linux /A/vmlinuz talos.platform=metal\n  initrd /A/initramfs.xz\n}\nmenuentry \"Reset Talos installation\" {\n  linux /A/vmlinuz talos.platform=metal talos.experimental.wipe=system:EPHEMERAL,STATE\n  initrd /A/initramfs.xz\n}\n";
        let out = inject_talos_config(cfg, URL).unwrap();
        let entries = talos_reads(&out);
        assert_eq!(entries.len(), 2, "{out}");
        for (linux, has_initrd) in entries {
            assert!(has_initrd, "the entry is cut before its initrd line: {out}");
            assert!(linux.contains(&format!(" talos.config={URL}")), "{linux}");
        }
        // Without the braces escaped, Talos cut the entry at `${uuid}`'s `}`, as in the
        // original app's failed reboots.
        let unescaped = out.replace("\\{uuid\\}", "{uuid}");
        assert!(talos_reads(&unescaped).iter().any(|(_, initrd)| !initrd));
    }
}
