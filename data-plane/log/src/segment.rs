//! One segment of a partition log: a file `<base offset, 20 digits>.log` of whole batches, with a
//! sparse in-memory offset index and time index rebuilt from batch headers when the segment opens.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::LogError;
use crate::batch::{self, BatchHeader, HEADER_SIZE};

/// The bound on a stored batch's size: stored data is checked for structure, not against the
/// current `max.message.bytes` (lowering that setting must not make old batches "corrupt").
pub(crate) const STORED_BATCH_LIMIT: usize = i32::MAX as usize;

/// A segment file and its indexes.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: i64,
    pub path: PathBuf,
    file: File,
    pub size: u64,
    /// The offset after the last batch (== `base_offset` when empty).
    pub next_offset: i64,
    /// Largest timestamp of any batch, or -1 when empty.
    pub max_timestamp: i64,
    /// Sparse `(batch base offset, file position)`, ascending.
    offset_index: Vec<(i64, u64)>,
    /// Sparse `(max timestamp so far, batch base offset)`, both ascending.
    time_index: Vec<(i64, i64)>,
    bytes_since_index_entry: u64,
    index_interval_bytes: u64,
}

/// What recovery found in a segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// Every batch is whole and valid.
    Clean,
    /// A torn or corrupt tail starting at this position was cut off.
    Truncated { at: u64, reason: String },
}

pub(crate) fn file_name(base_offset: i64) -> String {
    format!("{base_offset:020}.log")
}

pub(crate) fn parse_file_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(".log")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LogError + 'a {
    move |source| LogError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

impl Segment {
    /// Creates an empty segment file.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u64,
    ) -> Result<Segment, LogError> {
        let path = dir.join(file_name(base_offset));
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(io("cannot create segment", &path))?;
        sync_dir(dir)?;
        Ok(Segment::empty(
            base_offset,
            path,
            file,
            index_interval_bytes,
        ))
    }

    fn empty(base_offset: i64, path: PathBuf, file: File, index_interval_bytes: u64) -> Segment {
        Segment {
            base_offset,
            path,
            file,
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_index: Vec::new(),
            time_index: Vec::new(),
            bytes_since_index_entry: 0,
            index_interval_bytes,
        }
    }

    /// Opens an existing segment and rebuilds its indexes from the batch headers. With
    /// `verify_crc`, every batch is read whole and checked; the first torn or corrupt batch and
    /// everything after it are truncated away.
    pub fn open(
        path: &Path,
        base_offset: i64,
        index_interval_bytes: u64,
        verify_crc: bool,
    ) -> Result<(Segment, Scan), LogError> {
        let max_batch_bytes = STORED_BATCH_LIMIT;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map_err(io("cannot open segment", path))?;
        let file_size = file
            .metadata()
            .map_err(io("cannot stat segment", path))?
            .len();
        let mut segment = Segment::empty(base_offset, path.to_owned(), file, index_interval_bytes);
        let mut position = 0u64;
        let mut header_buf = [0u8; HEADER_SIZE];
        let mut batch_buf = Vec::new();
        let mut scan = Scan::Clean;
        while position < file_size {
            let problem = (|| {
                let available = (file_size - position) as usize;
                if available < HEADER_SIZE {
                    return Err(format!(
                        "{available} trailing bytes, less than a batch header"
                    ));
                }
                segment
                    .file
                    .read_exact_at(&mut header_buf, position)
                    .map_err(|e| e.to_string())?;
                let header =
                    batch::parse_header(&header_buf, max_batch_bytes).map_err(|e| e.to_string())?;
                if header.size() > available {
                    return Err(format!(
                        "batch of {} bytes but only {available} left",
                        header.size()
                    ));
                }
                if header.base_offset < segment.next_offset {
                    return Err(format!(
                        "offset {} goes backwards (expected >= {})",
                        header.base_offset, segment.next_offset
                    ));
                }
                if verify_crc {
                    batch_buf.resize(header.size(), 0);
                    segment
                        .file
                        .read_exact_at(&mut batch_buf, position)
                        .map_err(|e| e.to_string())?;
                    batch::validate(&batch_buf, max_batch_bytes).map_err(|e| e.to_string())?;
                }
                Ok(header)
            })();
            match problem {
                Ok(header) => {
                    segment.track(&header, position);
                    position += header.size() as u64;
                }
                Err(reason) => {
                    segment
                        .file
                        .set_len(position)
                        .map_err(io("cannot truncate segment", path))?;
                    segment
                        .file
                        .sync_all()
                        .map_err(io("cannot sync segment", path))?;
                    scan = Scan::Truncated {
                        at: position,
                        reason,
                    };
                    break;
                }
            }
        }
        segment.size = position;
        Ok((segment, scan))
    }

    /// Records a batch written at `position` in the indexes.
    fn track(&mut self, header: &BatchHeader, position: u64) {
        if self.offset_index.is_empty() || self.bytes_since_index_entry >= self.index_interval_bytes
        {
            self.offset_index.push((header.base_offset, position));
            // Entry `(m, o)`: every batch before offset `o` has timestamps at most `m` (the
            // running maximum), so a search for a later timestamp may start at `o`.
            if self.max_timestamp > self.time_index.last().map_or(i64::MIN, |(ts, _)| *ts) {
                self.time_index
                    .push((self.max_timestamp, header.base_offset));
            }
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += header.size() as u64;
        self.next_offset = header.last_offset() + 1;
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        self.size = position + header.size() as u64;
    }

    /// Appends whole, offset-assigned batches described by `headers`.
    pub fn append(&mut self, bytes: &[u8], headers: &[BatchHeader]) -> Result<(), LogError> {
        if let Err(source) = (&self.file).write_all(bytes) {
            // Cut off whatever part reached the file, so the next append starts at `size` again.
            let _ = self.file.set_len(self.size);
            let path = self.path.clone();
            return Err(LogError::Io {
                action: "cannot append to segment",
                path,
                source,
            });
        }
        let mut position = self.size;
        for header in headers {
            self.track(header, position);
            position += header.size() as u64;
        }
        Ok(())
    }

    /// Makes everything appended durable.
    pub fn flush(&self) -> Result<(), LogError> {
        self.file
            .sync_data()
            .map_err(io("cannot sync segment", &self.path))
    }

    /// The file position of the batch holding `offset` (or the first batch after it), by the
    /// index and then a header scan. `None` when the segment has nothing at or after `offset`.
    pub fn find(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let start = match self.offset_index.partition_point(|(o, _)| *o <= offset) {
            0 => 0,
            i => self.offset_index[i - 1].1,
        };
        self.scan_from(start, |header| header.last_offset() >= offset)
    }

    /// The first batch at or after `position` for which `wanted` holds, with its position.
    fn scan_from(
        &self,
        mut position: u64,
        wanted: impl Fn(&BatchHeader) -> bool,
    ) -> Result<Option<(u64, BatchHeader)>, LogError> {
        while position < self.size {
            let header = self.header_at(position)?;
            if wanted(&header) {
                return Ok(Some((position, header)));
            }
            position += header.size() as u64;
        }
        Ok(None)
    }

    /// The header of the stored batch at `position`.
    pub fn header_at(&self, position: u64) -> Result<BatchHeader, LogError> {
        let mut header_buf = [0u8; HEADER_SIZE];
        self.file
            .read_exact_at(&mut header_buf, position)
            .map_err(io("cannot read segment", &self.path))?;
        batch::parse_header(&header_buf, STORED_BATCH_LIMIT).map_err(|source| LogError::Corrupt {
            path: self.path.clone(),
            position,
            source,
        })
    }

    /// The base offset and max timestamp of the first batch whose max timestamp is at least
    /// `timestamp`.
    pub fn find_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, LogError> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        let start_offset = match self.time_index.partition_point(|(ts, _)| *ts < timestamp) {
            0 => self.base_offset,
            // The entry before the first >= one: batches from there on may qualify.
            i => self.time_index[i - 1].1,
        };
        let Some((position, _)) = self.find(start_offset)? else {
            return Ok(None);
        };
        let found = self.scan_from(position, |header| header.max_timestamp >= timestamp)?;
        Ok(found.map(|(_, header)| (header.base_offset, header.max_timestamp)))
    }

    /// Reads `len` bytes at `position`.
    pub fn read(&self, position: u64, len: usize) -> Result<Vec<u8>, LogError> {
        let mut out = vec![0u8; len];
        self.file
            .read_exact_at(&mut out, position)
            .map_err(io("cannot read segment", &self.path))?;
        Ok(out)
    }

    /// A handle of its own on the file (the cleaner reads a closed segment without the log).
    pub fn file_clone(&self) -> Result<File, LogError> {
        self.file
            .try_clone()
            .map_err(io("cannot duplicate segment handle", &self.path))
    }

    /// Removes the segment file.
    pub fn delete(self) -> Result<(), LogError> {
        self.delete_file()
    }

    /// Removes the segment file, keeping the handle (the caller drops it once removed).
    pub fn delete_file(&self) -> Result<(), LogError> {
        std::fs::remove_file(&self.path).map_err(io("cannot delete segment", &self.path))
    }
}

/// fsyncs a directory so that a created, renamed or removed entry survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("cannot sync directory", dir))
}
