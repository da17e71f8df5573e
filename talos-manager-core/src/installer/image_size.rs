//! [`image_size`]: the size a Talos image has on disk, learnt before writing it, so that the
//! write's progress can be shown in percent.

use super::plan::Decompressor;

/// How many bytes of a zstd stream hold its first frame header, at most.
const ZSTD_HEADER_MAX: usize = 18;

/// The size the image at `url` has once decompressed, when the server tells it cheaply: the
/// length of an uncompressed image, or the content size a zstd image records in its frame
/// header (the zstd tool writes it for files). `None` otherwise (xz, tar.gz, streamed zstd, any
/// failure): the write then reports bytes without a percentage.
///
/// Reads at most the first chunk of the body (asking for the first bytes with `Range`).
pub async fn image_size(client: &reqwest::Client, url: &str) -> Option<u64> {
    crate::dial_guard::enforce_url("image download", url);
    let decompressor = Decompressor::for_url(url);
    if !matches!(decompressor, Decompressor::None | Decompressor::Zstd) {
        return None;
    }
    let mut response = client
        .get(url)
        .header(
            reqwest::header::RANGE,
            format!("bytes=0-{}", ZSTD_HEADER_MAX - 1),
        )
        .send()
        .await
        .ok()?;
    let status = response.status();
    if !status.is_success() {
        return None;
    }
    if decompressor == Decompressor::None {
        return match status {
            reqwest::StatusCode::PARTIAL_CONTENT => response
                .headers()
                .get(reqwest::header::CONTENT_RANGE)?
                .to_str()
                .ok()?
                .rsplit_once('/')?
                .1
                .parse()
                .ok(),
            _ => response.content_length(),
        };
    }
    let mut head = Vec::with_capacity(ZSTD_HEADER_MAX);
    while head.len() < ZSTD_HEADER_MAX {
        match response.chunk().await.ok()? {
            Some(chunk) => head.extend_from_slice(&chunk),
            None => break,
        }
    }
    zstd_content_size(&head)
}

/// The `Frame_Content_Size` of the zstd frame `head` starts with (RFC 8878, section 3.1.1.1).
///
/// Written out here rather than pulled from a zstd crate: the whole need is these few header
/// fields, and the crates that have them bring a decoder (and a C library) along.
fn zstd_content_size(head: &[u8]) -> Option<u64> {
    const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
    if head.get(..4)? != MAGIC {
        return None;
    }
    let descriptor = *head.get(4)?;
    let size_flag = descriptor >> 6;
    let single_segment = descriptor & 0x20 != 0;
    let dictionary_id_bytes = [0, 1, 2, 4][usize::from(descriptor & 0x03)];
    let size_bytes = match (size_flag, single_segment) {
        (0, false) => return None,
        (0, true) => 1,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let start = 5 + usize::from(!single_segment) + dictionary_id_bytes;
    let field = head.get(start..start + size_bytes)?;
    let mut value = [0u8; 8];
    value[..size_bytes].copy_from_slice(field);
    let size = u64::from_le_bytes(value);
    // The two-byte form is stored minus 256.
    Some(if size_bytes == 2 { size + 256 } else { size })
}

#[cfg(test)]
mod tests {
    use super::zstd_content_size;

    #[test]
    fn reads_the_frame_content_size() {
        // First bytes of what `zstd FILE -o FILE.zst` (zstd 1.5.4) wrote for files of 5 bytes,
        // 1000 bytes, 1 MiB and 5000000 bytes, and of `zstd -c` reading a pipe.
        let five = [0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x05, 0x29, 0x00];
        assert_eq!(zstd_content_size(&five), Some(5));
        let thousand = [0x28, 0xb5, 0x2f, 0xfd, 0x64, 0xe8, 0x02, 0x41];
        assert_eq!(zstd_content_size(&thousand), Some(1000));
        let one_mib = [0x28, 0xb5, 0x2f, 0xfd, 0xa4, 0x00, 0x00, 0x10, 0x00];
        assert_eq!(zstd_content_size(&one_mib), Some(1 << 20));
        let windowed = [0x28, 0xb5, 0x2f, 0xfd, 0x84, 0x58, 0x40, 0x4b, 0x4c, 0x00];
        assert_eq!(zstd_content_size(&windowed), Some(5_000_000));
        let streamed = [0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0x29, 0x00];
        assert_eq!(zstd_content_size(&streamed), None);
        assert_eq!(zstd_content_size(b"not zstd at all"), None);
        assert_eq!(zstd_content_size(&five[..5]), None);
    }
}
