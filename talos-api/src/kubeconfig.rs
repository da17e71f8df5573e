//! The kubeconfig out of what `MachineService.Kubeconfig` streams: a gzip-compressed tar with
//! one file, `kubeconfig`, that Talos never finishes (no padding after the file, no
//! end-of-archive blocks). Reading past the first entry fails, so this reads entries only until
//! it has the one named `kubeconfig`, and stops.

use std::io::Read as _;
use std::path::Component;

use flate2::read::GzDecoder;

/// The text of the archive's `kubeconfig` entry.
pub(crate) fn unpack_kubeconfig(archive: &[u8]) -> Result<String, String> {
    let mut archive = tar::Archive::new(GzDecoder::new(archive));
    let entries = archive
        .entries()
        .map_err(|error| format!("the kubeconfig archive is unreadable: {error}"))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|error| format!("the kubeconfig archive is unreadable: {error}"))?;
        let is_kubeconfig = entry.path().is_ok_and(|path| {
            path.components()
                .filter(|component| *component != Component::CurDir)
                .eq([Component::Normal("kubeconfig".as_ref())])
        });
        if is_kubeconfig {
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|error| format!("the kubeconfig in the archive is unreadable: {error}"))?;
            return Ok(text);
        }
    }
    Err("the archive holds no kubeconfig".to_owned())
}
