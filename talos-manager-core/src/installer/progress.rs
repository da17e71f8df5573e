//! Progress of the image write: `dd status=progress` lines turned into [`Progress`] events.

use std::time::Duration;

/// How far the image write has come.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Bytes written to the disk so far.
    pub bytes: u64,
    /// Time since dd started.
    pub elapsed: Duration,
    /// Average write rate since dd started, in bytes per second.
    pub bytes_per_second: Option<f64>,
    /// Share of the image written, from 0 to 100, when its size is known.
    pub percent: Option<f64>,
}

/// Parses one line of dd's progress output, such as
/// `1048576000 bytes (1.0 GB, 1000 MiB) copied, 2.00064 s, 524 MB/s`.
/// Returns `None` for other lines (`250+0 records in`, errors).
///
/// ```
/// use talos_manager_core::installer::parse_dd_progress;
///
/// let p = parse_dd_progress("2097152 bytes (2.1 MB, 2.0 MiB) copied, 2 s, 1.0 MB/s", Some(4194304)).unwrap();
/// assert_eq!((p.bytes, p.percent), (2097152, Some(50.0)));
/// assert_eq!(p.bytes_per_second, Some(1048576.0));
/// ```
pub fn parse_dd_progress(line: &str, total: Option<u64>) -> Option<Progress> {
    let line = line.trim();
    let (bytes, rest) = line.split_once(" bytes")?;
    let bytes: u64 = bytes.parse().ok()?;
    let (_, after) = rest.split_once("copied, ")?;
    let (seconds, _) = after.split_once(" s")?;
    let seconds: f64 = seconds.replace(',', ".").parse().ok()?;
    let elapsed = Duration::try_from_secs_f64(seconds).ok()?;
    let bytes_per_second = (seconds > 0.0).then(|| bytes as f64 / seconds);
    let percent = total
        .filter(|&total| total > 0)
        .map(|total| (bytes as f64 * 100.0 / total as f64).min(100.0));
    Some(Progress {
        bytes,
        elapsed,
        bytes_per_second,
        percent,
    })
}

/// Splits a byte stream into lines at `\n` and `\r` (dd rewrites its progress line with `\r`).
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Adds a chunk and calls `on_line` for every line it completes (empty lines skipped).
    pub(crate) fn push(&mut self, chunk: &[u8], on_line: &mut dyn FnMut(&str)) {
        for &byte in chunk {
            if byte == b'\n' || byte == b'\r' {
                self.flush(on_line);
            } else {
                self.pending.push(byte);
            }
        }
    }

    /// Calls `on_line` with what is left after the last line break.
    pub(crate) fn flush(&mut self, on_line: &mut dyn FnMut(&str)) {
        if !self.pending.is_empty() {
            on_line(&String::from_utf8_lossy(&self.pending));
            self.pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gnu_dd_lines() {
        let p = parse_dd_progress(
            "1048576000 bytes (1.0 GB, 1000 MiB) copied, 2.5 s, 419 MB/s",
            None,
        )
        .unwrap();
        assert_eq!(p.bytes, 1048576000);
        assert_eq!(p.elapsed, Duration::from_millis(2500));
        assert_eq!(p.bytes_per_second, Some(419430400.0));
        assert_eq!(p.percent, None);
        let small = parse_dd_progress("512 bytes copied, 0.001 s, 512 kB/s", Some(256)).unwrap();
        assert_eq!(small.percent, Some(100.0));
        assert_eq!(parse_dd_progress("250+0 records in", None), None);
        assert_eq!(
            parse_dd_progress("dd: error writing '/dev/sda': No space", None),
            None
        );
    }

    #[test]
    fn splits_on_carriage_returns() {
        let mut lines = Vec::new();
        let mut splitter = LineSplitter::default();
        for chunk in [
            &b"10 bytes copied\r20 by"[..],
            b"tes copied\r\n1+0 records in\nlast",
        ] {
            splitter.push(chunk, &mut |line| lines.push(line.to_owned()));
        }
        splitter.flush(&mut |line| lines.push(line.to_owned()));
        assert_eq!(
            lines,
            [
                "10 bytes copied",
                "20 bytes copied",
                "1+0 records in",
                "last"
            ]
        );
    }
}
