//! The kubeconfig archive as Talos sends it: gzip over a tar holding one `kubeconfig` entry
//! (mode 0600), with neither the padding after the file's data nor the end-of-archive blocks
//! (Talos never closes its tar writer).

use std::io::Write as _;

use flate2::Compression;
use flate2::write::GzEncoder;

pub(crate) fn unfinished_archive(kubeconfig: &str) -> std::io::Result<Vec<u8>> {
    let mut header = tar::Header::new_ustar();
    header.set_path("kubeconfig")?;
    header.set_size(kubeconfig.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
    gzip.write_all(header.as_bytes())?;
    gzip.write_all(kubeconfig.as_bytes())?;
    gzip.finish()
}
