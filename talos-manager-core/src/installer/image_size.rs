//! [`check_image`]: before anything touches the disk, the image the rescue system will
//! download is asked for once, so that a schematic or Talos version the Image Factory does not
//! know (or a custom URL that answers 404) fails the bootstrap with the server's own message and
//! the disk untouched; and [`image_size`]: the size the image has on disk, learnt from the same
//! answer, so that the write's progress can be shown in percent.

use super::plan::Decompressor;

/// How many bytes of a zstd stream hold its first frame header, at most.
const ZSTD_HEADER_MAX: usize = 18;
/// How much of an error answer's text is kept.
const MESSAGE_MAX: usize = 500;

/// What the image server said when asked for the image's first bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageCheck {
    /// It answered 2xx: the image exists. `size` is its size once decompressed, when the answer
    /// tells it (see [`image_size`]).
    Found {
        /// The decompressed size, when known.
        size: Option<u64>,
    },
    /// No answer (unreachable, timed out: the Image Factory builds a new image before it sends
    /// a byte): nothing is known; the rescue system, on its own network, may still get it.
    Unconfirmed {
        /// Why, for the job's log.
        reason: String,
    },
}

impl ImageCheck {
    /// The decompressed size, when the image was found and its size is known.
    pub fn size(&self) -> Option<u64> {
        match self {
            ImageCheck::Found { size } => *size,
            ImageCheck::Unconfirmed { .. } => None,
        }
    }
}

/// The image server refused the image: the rescue system's download would fail the same way,
/// after the disk was wiped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Talos image {url} is not available (HTTP {status}): {message}")]
pub struct ImageUnavailable {
    /// The URL the rescue system would download.
    pub url: String,
    /// The answer's status code.
    pub status: u16,
    /// The server's own text (the Image Factory's reason, e.g. `schematic ID "…" not found` or
    /// `version v1.99.0 is not available`), trimmed and cut at 500 characters; the status'
    /// reason phrase when the body is empty.
    pub message: String,
}

/// Asks for the first bytes of the image at `url` (a `Range` GET of the exact URL the rescue
/// system downloads, redirects followed): [`ImageUnavailable`] with the server's text for any
/// answer other than 2xx; otherwise what the answer tells (found, with the size when known, or
/// unconfirmed when no answer came).
///
/// Reads at most the first chunk of the body.
pub async fn check_image(
    client: &reqwest::Client,
    url: &str,
) -> Result<ImageCheck, ImageUnavailable> {
    crate::dial_guard::enforce_url("image download", url);
    let response = match client
        .get(url)
        .header(
            reqwest::header::RANGE,
            format!("bytes=0-{}", ZSTD_HEADER_MAX - 1),
        )
        .send()
        .await
    {
        Ok(response) => response,
        Err(error) => {
            return Ok(ImageCheck::Unconfirmed {
                reason: crate::error_chain(&error).to_string(),
            });
        }
    };
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        let text = text.trim();
        let message = match text.is_empty() {
            true => status
                .canonical_reason()
                .unwrap_or("no reason given")
                .to_owned(),
            false => text.chars().take(MESSAGE_MAX).collect(),
        };
        return Err(ImageUnavailable {
            url: url.to_owned(),
            status: status.as_u16(),
            message,
        });
    }
    Ok(ImageCheck::Found {
        size: decompressed_size(response, Decompressor::for_url(url)).await,
    })
}

/// The size the image at `url` has once decompressed, when the server tells it cheaply: the
/// length of an uncompressed image, or the content size a zstd image records in its frame
/// header (the zstd tool writes it for files). `None` otherwise (xz, tar.gz, streamed zstd, any
/// failure): the write then reports bytes without a percentage.
///
/// Reads at most the first chunk of the body (asking for the first bytes with `Range`).
pub async fn image_size(client: &reqwest::Client, url: &str) -> Option<u64> {
    check_image(client, url).await.ok()?.size()
}

/// The decompressed size a successful ranged answer tells, if any.
async fn decompressed_size(
    mut response: reqwest::Response,
    decompressor: Decompressor,
) -> Option<u64> {
    if !matches!(decompressor, Decompressor::None | Decompressor::Zstd) {
        return None;
    }
    let status = response.status();
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
