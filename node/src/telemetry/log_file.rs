//! The node's log file, `DATA/node.log`, rotated by size ([`MAX_BYTES`] × [`KEEP_FILES`]
//! old copies `node.log.1` ... ). It is opened once the data dir is known to be this
//! node's, so a refused directory never gets a file; lines before that go to stderr only.

use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use tracing_subscriber::fmt::MakeWriter;

use crate::store::LOG_FILE;

pub const MAX_BYTES: usize = 10 * 1024 * 1024;
pub const KEEP_FILES: usize = 5;

#[derive(Default)]
pub struct LogFile {
    file: Mutex<Option<FileRotate<AppendCount>>>,
}

impl LogFile {
    /// Starts writing to `dir/node.log` (the directory must exist).
    pub fn open(&self, dir: &Path) {
        let file = FileRotate::new(
            dir.join(LOG_FILE),
            AppendCount::new(KEEP_FILES),
            ContentLimit::BytesSurpassed(MAX_BYTES),
            Compression::None,
            None,
        );
        *self.file.lock().unwrap_or_else(|p| p.into_inner()) = Some(file);
    }
}

/// What the fmt layer writes through: one formatted event per `write` call.
pub struct LogFileWriter(Arc<LogFile>);

impl Write for LogFileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self
            .0
            .file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            Some(f) => f.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self
            .0
            .file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

/// Hands the fmt layer a writer per event.
#[derive(Clone, Default)]
pub struct LogFileHandle(pub Arc<LogFile>);

impl<'a> MakeWriter<'a> for LogFileHandle {
    type Writer = LogFileWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogFileWriter(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_a_bounded_number_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let handle = LogFileHandle::default();
        let mut w = handle.make_writer();
        w.write_all(b"before open\n").unwrap();
        assert!(!dir.path().join(LOG_FILE).exists());
        handle.0.open(dir.path());
        let line = vec![b'x'; 1024 * 1024];
        for _ in 0..(KEEP_FILES + 3) * 11 {
            w.write_all(&line).unwrap();
            w.write_all(b"\n").unwrap();
        }
        w.flush().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), KEEP_FILES + 1, "{names:?}");
        for n in &names {
            let len = std::fs::metadata(dir.path().join(n)).unwrap().len();
            assert!(len <= (MAX_BYTES + 2 * 1024 * 1024) as u64, "{n}: {len}");
        }
    }
}
