//! Writing recordings. Everything is built under the archive's staging prefix and
//! becomes visible in one step, so an interrupted import leaves no half recording:
//! locally one `rename` of the staged directory; in an object store, where nothing
//! renames, the staged objects are copied into place (inside the server) and the
//! recording's `zarr.json`, which is what makes a node a recording, is written last.

use std::sync::Arc;

use zarrs::array::{ArrayBuilder, codec::ZstdCodec, data_type};

use super::index::PageRow;
use super::samples::SamplesWriter;
use super::store::{Node, group_json, read_group_attrs, write_group, zarr_path};
use super::{Archive, ArchiveError, RecordingMeta, STAGING_DIR, SampleKind, meta};
use crate::store::{Expect, Location, Published, Store};

/// Chunk length of `stream` in bytes (docs/FORMAT.md explains the choice).
pub const STREAM_CHUNK: u64 = 1 << 20;
/// Rows per chunk of `index`.
const INDEX_CHUNK_ROWS: u64 = 65_536;
/// Where claims of object-store targets are, below the staging prefix (`Claim`).
const CLAIMS_DIR: &str = "claims";
/// The object of a claim, below its target's name.
const CLAIM_HOLDER: &str = "holder";
/// A remote staging prefix of another machine is taken for abandoned after this long.
const REMOTE_STAGING_LEASE: std::time::Duration = std::time::Duration::from_secs(48 * 3600);

/// A recording being written. Dropped without `commit`, it is removed.
pub struct StagedRecording {
    store: Store,
    target: String,
    /// Archive-relative prefix the recording is staged under.
    rel: String,
    committed: bool,
}

impl StagedRecording {
    /// Starts a recording that will appear at archive-relative `target`.
    pub fn new(archive: &Archive, target: &str) -> Result<Self, ArchiveError> {
        let store = archive.store().clone();
        let rel = format!("{STAGING_DIR}/{}", staging_name("rec"));
        Ok(StagedRecording {
            store,
            target: target.to_string(),
            rel,
            committed: false,
        })
    }

    /// Archive-relative prefix the recording is staged under (its future `checkpoints`
    /// go below it).
    pub fn rel(&self) -> &str {
        &self.rel
    }

    /// The archive's store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Where the staged recording is, for messages.
    pub fn location(&self) -> Location {
        self.store.location(&self.rel)
    }

    /// A local scratch directory for temporary files of this import.
    pub fn scratch_dir(&self) -> Result<tempfile::TempDir, ArchiveError> {
        Ok(self.store.scratch_dir()?)
    }

    /// Writes the complete stream as the `stream` array.
    pub fn write_stream(&self, bytes: &[u8]) -> Result<(), ArchiveError> {
        let err = |e: &dyn std::fmt::Display| ArchiveError::zarr(self.location().join("stream"), e);
        // A stream shorter than one chunk gets a chunk of exactly its length, so short
        // recordings do not carry a megabyte of padding each.
        let chunk = STREAM_CHUNK.min(bytes.len().max(1) as u64);
        let array = ArrayBuilder::new(
            vec![bytes.len() as u64],
            vec![chunk],
            data_type::uint8(),
            0u8,
        )
        .build(
            self.store.zarr(),
            &zarr_path(&format!("{}/stream", self.rel)),
        )
        .map_err(|e| err(&e))?;
        array.store_metadata().map_err(|e| err(&e))?;
        for (i, part) in bytes.chunks(chunk as usize).enumerate() {
            let mut c = part.to_vec();
            // Zarr chunks are always whole; the tail past the array's end is fill.
            c.resize(chunk as usize, 0);
            array.store_chunk(&[i as u64], c).map_err(|e| err(&e))?;
        }
        Ok(())
    }

    /// Starts the `samples` array of a PCM recording.
    pub fn samples_writer(
        &self,
        kind: SampleKind,
        channels: u16,
        chunk_frames: u64,
    ) -> Result<SamplesWriter, ArchiveError> {
        SamplesWriter::create(&self.store, &self.rel, kind, channels, chunk_frames)
    }

    /// Writes an Opus page index as the `index` array.
    pub fn write_index(&self, rows: &[PageRow]) -> Result<(), ArchiveError> {
        let rows: Vec<[i64; 4]> = rows.iter().map(PageRow::to_i64).collect();
        self.write_index_rows(&rows)
    }

    /// Writes `index`: int64 rows of four columns, zstd-compressed.
    pub fn write_index_rows(&self, rows: &[[i64; 4]]) -> Result<(), ArchiveError> {
        let err = |e: &dyn std::fmt::Display| ArchiveError::zarr(self.location().join("index"), e);
        let n = rows.len() as u64;
        let zstd = Arc::new(ZstdCodec::new(9, false));
        let array = ArrayBuilder::new(
            vec![n, 4],
            vec![INDEX_CHUNK_ROWS.min(n.max(1)), 4],
            data_type::int64(),
            0i64,
        )
        .bytes_to_bytes_codecs(vec![zstd])
        .build(
            self.store.zarr(),
            &zarr_path(&format!("{}/index", self.rel)),
        )
        .map_err(|e| err(&e))?;
        array.store_metadata().map_err(|e| err(&e))?;
        let flat: Vec<i64> = rows.iter().flatten().copied().collect();
        array
            .store_array_subset(&[0..n, 0..4], flat)
            .map_err(|e| err(&e))?;
        Ok(())
    }

    /// Writes the recording's group metadata and makes it visible at its target.
    ///
    /// Refuses to replace an existing node unless `force`, and even then replaces only
    /// a recording, never a folder (or anything else). Locally the old one is swapped
    /// out atomically (`renameat2(RENAME_EXCHANGE)`) and then deleted; if what was
    /// swapped out is not a recording (a folder another import made meanwhile), it is
    /// swapped back at once. In an object store the target's kind is checked inside
    /// the claim, then its `zarr.json` goes first (it disappears), then its arrays, and
    /// the new one is copied in.
    pub fn commit(mut self, meta: &RecordingMeta, force: bool) -> Result<(), ArchiveError> {
        let target = self.store.location(&self.target);
        meta.sealed().validate(&target)?;
        ensure_folders(&self.store, &self.target)?;
        if self.store.local_root().is_some() {
            write_group(&self.store, &self.rel, meta.to_attrs())?;
            match self.store.publish_local(&self.rel, &self.target, force)? {
                Published::New => self.committed = true,
                // The staged prefix now holds the replaced node; Drop removes it,
                // unless it is not a recording.
                Published::Replaced => self.check_replaced()?,
                Published::Exists => return Err(ArchiveError::Exists { path: target }),
            }
            return Ok(());
        }
        // Nothing renames in an object store: the copy below would mix two imports'
        // objects of one name, so only the holder of its claim copies.
        let _claim = Claim::take(&self.store, &self.target, &self.rel)?;
        match read_group_attrs(&self.store, &self.target)? {
            Node::Missing => {}
            _ if !force => return Err(ArchiveError::Exists { path: target }),
            // Right before erasing: what another writer made there since the import
            // looked (a folder of recordings) is not erased.
            node => {
                if let Some(what) = not_a_recording(&self.store, &self.target, node)? {
                    return Err(ArchiveError::NotARecording { path: target, what });
                }
                self.store.erase(&format!("{}/zarr.json", self.target))?;
                self.store.erase_prefix(&self.target)?;
            }
        }
        self.store.copy_prefix(&self.rel, &self.target)?;
        write_group(&self.store, &self.target, meta.to_attrs())?;
        // The recording is visible from here on; its staged copy is left for Drop.
        Ok(())
    }

    /// After a local `RENAME_EXCHANGE`: the node swapped out (now at the staging name)
    /// must be a recording. The import checked before it started, but a folder may
    /// have been made at the target since (`import --into` of that name); that is
    /// exchanged back at once and the commit fails, nothing of the folder lost.
    fn check_replaced(&mut self) -> Result<(), ArchiveError> {
        let verdict = read_group_attrs(&self.store, &self.rel)
            .and_then(|node| not_a_recording(&self.store, &self.rel, node));
        let what = match verdict {
            Ok(None) => return Ok(()),
            Ok(Some(what)) => Ok(what),
            // Unknown: it is put back rather than deleted.
            Err(e) => Err(e),
        };
        let target = self.store.location(&self.target);
        match self.store.publish_local(&self.rel, &self.target, true) {
            // Swapped back: the staged prefix holds this import's recording again.
            Ok(Published::Replaced) => self.rescue_entries(),
            // Nothing was at the target any more (removed meanwhile): the old node is
            // back. Or it could not be put back: it stays where it is, never deleted.
            Ok(Published::New | Published::Exists) => self.committed = true,
            Err(e) => {
                self.committed = true;
                log::error!(
                    "{target}: what was there is at {} now and could not be put back: {e}",
                    self.store.location(&self.rel)
                );
                return Err(e.into());
            }
        }
        Err(ArchiveError::NotARecording {
            path: target,
            what: what?,
        })
    }

    /// Moves back into the target what another import committed into it during the
    /// moment it was this import's recording (the entries a recording does not have).
    fn rescue_entries(&self) {
        let Ok(names) = self.store.list_dirs(&self.rel) else {
            return;
        };
        for name in names
            .iter()
            .filter(|n| !RECORDING_ENTRIES.contains(&n.as_str()))
        {
            let (from, to) = (
                format!("{}/{name}", self.rel),
                format!("{}/{name}", self.target),
            );
            match self.store.publish_local(&from, &to, false) {
                Ok(Published::New) => log::info!(
                    "{}: moved back from {}",
                    self.store.location(&to),
                    self.store.location(&from)
                ),
                Ok(_) | Err(_) => log::warn!(
                    "{}: committed into the target while it was briefly replaced; could not \
                     be moved back to {}",
                    self.store.location(&from),
                    self.store.location(&to)
                ),
            }
        }
    }
}

/// The arrays and groups a recording holds (everything else below it was put there by
/// someone else).
const RECORDING_ENTRIES: [&str; 5] = ["stream", "index", "checkpoints", "samples", "chunk_crc32c"];

/// Why the node at `rel` (read as `node`) may not be replaced by `import --force`, or
/// None for a recording. A recording holds its arrays and its checkpoints; a child
/// that is a folder or a recording means the node is really a folder.
fn not_a_recording(store: &Store, rel: &str, node: Node) -> Result<Option<String>, ArchiveError> {
    match node {
        Node::Group(attrs) if meta::is_recording(&attrs) => {}
        Node::Group(attrs) if meta::is_folder(&attrs) => return Ok(Some("a folder".into())),
        Node::Missing => return Ok(Some("not a recording (it has no zarr.json)".into())),
        _ => return Ok(Some("not a recording".into())),
    }
    let children = match store.list_dirs(rel) {
        Ok(c) => c,
        // A web server cannot list; it cannot be written either.
        Err(crate::store::StoreError::Unsupported { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let foreign = |c: &&String| {
        !RECORDING_ENTRIES.contains(&c.as_str()) && !c.starts_with('.') && !c.starts_with("__")
    };
    for child in children.iter().filter(foreign) {
        if let Node::Group(a) = read_group_attrs(store, &format!("{rel}/{child}"))?
            && (meta::is_recording(&a) || meta::is_folder(&a))
        {
            return Ok(Some(format!(
                "a recording with \"{child}\" inside it, a folder or recording of its own"
            )));
        }
    }
    Ok(None)
}

/// Whether `import --force` may replace the node at archive-relative `target`: Ok
/// when there is none or it is a recording, else `NotARecording`. The commit checks
/// again (`StagedRecording::commit`).
pub fn check_replaceable(archive: &Archive, target: &str) -> Result<(), ArchiveError> {
    let store = archive.store();
    match read_group_attrs(store, target)? {
        Node::Missing => Ok(()),
        node => match not_a_recording(store, target, node)? {
            None => Ok(()),
            Some(what) => Err(ArchiveError::NotARecording {
                path: store.location(target),
                what,
            }),
        },
    }
}

/// The right to write the recording at a target of an object store: the object
/// `STAGING_DIR/CLAIMS_DIR/<target in hexadecimal>/holder`, created only if absent
/// (`If-None-Match: *`) and holding the staging name of its holder; removed when
/// dropped. A claim whose
/// holder is gone (a process of this machine no longer running, or older than the
/// remote staging lease) is taken over here and removed by `clean_stale_staging`.
struct Claim<'a> {
    store: &'a Store,
    key: String,
}

impl<'a> Claim<'a> {
    fn take(store: &'a Store, target: &str, holder: &str) -> Result<Claim<'a>, ArchiveError> {
        // Hexadecimal: any target is one plain key part (no `/`, nothing a store or
        // its client would escape).
        let name: String = target.bytes().map(|b| format!("{b:02x}")).collect();
        let key = format!("{STAGING_DIR}/{CLAIMS_DIR}/{name}/{CLAIM_HOLDER}");
        let me = holder.rsplit('/').next().unwrap_or(holder).to_string();
        for _ in 0..3 {
            if store.put_if(&key, me.clone().into_bytes().into(), &Expect::Absent)? {
                return Ok(Claim { store, key });
            }
            let by = claim_holder(store, &key)?;
            if by.is_empty() {
                // Released since: try again.
                continue;
            }
            if !is_abandoned(&by, false) {
                return Err(ArchiveError::Busy {
                    path: store.location(target),
                    by,
                });
            }
            log::info!(
                "{}: taking over the claim of {by}, which is gone",
                store.location(target)
            );
            store.erase(&key)?;
        }
        Err(ArchiveError::Busy {
            path: store.location(target),
            by: "claims keep changing".into(),
        })
    }
}

/// The staging name in the claim at `key` ("" when it went meanwhile).
fn claim_holder(store: &Store, key: &str) -> Result<String, ArchiveError> {
    Ok(store
        .get(key)?
        .map(|o| String::from_utf8_lossy(&o.bytes).into_owned())
        .unwrap_or_default())
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.store.erase(&self.key) {
            log::warn!(
                "could not remove the claim {}: {e}",
                self.store.location(&self.key)
            );
        }
    }
}

impl Drop for StagedRecording {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // What is staged is a failed import's part, or the node a commit replaced,
        // which readers may still have open: it then waits for `clean_stale_staging`.
        match self.store.erase_unless_pinned(&self.rel) {
            Ok(true) => {}
            Ok(false) => log::info!(
                "{}: the replaced recording is still open for reading; it is removed later",
                self.store.location(&self.rel)
            ),
            Err(e) => log::warn!("could not remove the staged recording: {e}"),
        }
    }
}

/// A staging name no other import (on any machine) uses: `KIND-PID-NANOS-N-HOST`.
fn staging_name(kind: &str) -> String {
    format!(
        "{kind}-{}-{}-{}",
        std::process::id(),
        crate::store::unique(),
        hostname()
    )
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
    // (or truncates, which only makes the name shorter).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end])
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Removes the recording `path` names (as `Archive::find_recording` takes it) and
/// returns its archive-relative path. Locally it leaves in one `rename` into the
/// staging area, where it stays until no reader has it open (see `Store::pin`); in an
/// object store its `zarr.json` goes first, so it is gone for every reader before its
/// arrays are deleted. The caller updates the manifest.
pub fn remove_recording(archive: &Archive, path: &str) -> Result<String, ArchiveError> {
    let store = archive.store();
    if !store.is_writable() {
        return Err(crate::store::StoreError::ReadOnly {
            at: archive.location(""),
        }
        .into());
    }
    let (path, _) = archive.find_recording(path)?;
    if store.local_root().is_none() {
        store.erase(&format!("{path}/zarr.json"))?;
        store.erase_prefix(&path)?;
        return Ok(path);
    }
    let staged = format!("{STAGING_DIR}/{}", staging_name("rm"));
    match store.publish_local(&path, &staged, false)? {
        Published::New => {}
        Published::Replaced | Published::Exists => {
            return Err(ArchiveError::Exists {
                path: store.location(&staged),
            });
        }
    }
    if !store.erase_unless_pinned(&staged)? {
        log::info!(
            "{}: still open for reading; its data is removed once it is closed",
            archive.location(&path)
        );
    }
    Ok(path)
}

/// Creates the folder groups on the way to `target` (all but its last component).
pub fn ensure_folders(store: &Store, target: &str) -> Result<(), ArchiveError> {
    let parts: Vec<&str> = target.split('/').collect();
    let mut rel = String::new();
    for part in &parts[..parts.len().saturating_sub(1)] {
        if !rel.is_empty() {
            rel.push('/');
        }
        rel.push_str(part);
        match read_group_attrs(store, &rel)? {
            Node::Missing => create_folder(store, &rel)?,
            Node::Group(attrs) if meta::is_folder(&attrs) => {}
            _ => {
                return Err(ArchiveError::metadata(
                    store.location(&rel),
                    "exists and is not a folder",
                ));
            }
        }
    }
    Ok(())
}

/// Creates the folder group `rel`, never over what another writer put there meanwhile
/// (a recording committed at that name, whose `zarr.json` an overwrite would turn into
/// a folder's): locally a staged directory holding the folder's `zarr.json` is renamed
/// into place (`RENAME_NOREPLACE`), so the folder also never exists without it; in an
/// object store the `zarr.json` is written only if absent (`If-None-Match: *`).
/// Whoever comes first wins; what is there then must be a folder.
fn create_folder(store: &Store, rel: &str) -> Result<(), ArchiveError> {
    let created = if store.local_root().is_some() {
        let staged = format!("{STAGING_DIR}/{}", staging_name("dir"));
        write_group(store, &staged, meta::folder_attrs())?;
        let published = store.publish_local(&staged, rel, false);
        if !matches!(published, Ok(Published::New)) {
            let _ = store.erase_prefix(&staged);
        }
        matches!(published?, Published::New)
    } else {
        let bytes = group_json(meta::folder_attrs());
        store.put_if(&format!("{rel}/zarr.json"), bytes.into(), &Expect::Absent)?
    };
    if created {
        return Ok(());
    }
    match read_group_attrs(store, rel)? {
        Node::Group(attrs) if meta::is_folder(&attrs) => Ok(()),
        // A directory without `zarr.json` (made by hand, or left by an older version)
        // becomes the folder, as it always did.
        Node::Missing => write_group(store, rel, meta::folder_attrs()),
        _ => Err(ArchiveError::metadata(
            store.location(rel),
            "exists and is not a folder",
        )),
    }
}

/// Whether the writer that named a staging entry `name` (`KIND-PID-NANOS-N-HOST`,
/// see `staging_name`) is gone: a process of this machine (or any writer of a local
/// store, which only this machine writes) that no longer runs, or a writer of
/// another machine that started longer ago than the remote staging lease.
fn is_abandoned(name: &str, local_store: bool) -> bool {
    let mut parts = name.splitn(5, '-');
    let (_kind, pid, nanos, _n, host) = (
        parts.next(),
        parts.next().and_then(|p| p.parse::<i32>().ok()),
        parts.next().and_then(|p| p.parse::<u128>().ok()),
        parts.next(),
        parts.next(),
    );
    if local_store || host == Some(hostname().as_str()) {
        !pid.is_some_and(crate::store::process_running)
    } else {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        nanos.is_some_and(|t| now.as_nanos().saturating_sub(t) > REMOTE_STAGING_LEASE.as_nanos())
    }
}

/// Removes the claims of object-store targets whose holders are gone.
fn clean_stale_claims(store: &Store) {
    let dir = format!("{STAGING_DIR}/{CLAIMS_DIR}");
    let Ok(targets) = store.list_dirs(&dir) else {
        return;
    };
    for t in targets {
        let key = format!("{dir}/{t}/{CLAIM_HOLDER}");
        if let Ok(by) = claim_holder(store, &key)
            && is_abandoned(&by, false)
            && store.erase(&key).is_ok()
        {
            log::info!(
                "removed the claim of {by}, which is gone: {}",
                store.location(&key)
            );
        }
    }
}

/// Removes what imports that were killed left under the staging prefix: locally (or
/// from this machine) those whose process is gone, from other machines those older
/// than two days; and the recordings replaced or removed, once no reader has them
/// open.
pub fn clean_stale_staging(archive: &Archive) {
    let store = archive.store();
    if !store.is_writable() {
        return;
    }
    store.clean_stale_temp_files();
    let Ok(names) = store.list_dirs(STAGING_DIR) else {
        return;
    };
    let local_store = store.local_root().is_some();
    for name in names {
        if name == CLAIMS_DIR {
            clean_stale_claims(store);
            continue;
        }
        let stale = is_abandoned(&name, local_store);
        if stale {
            let rel = format!("{STAGING_DIR}/{name}");
            if let Ok(true) = store.erase_unless_pinned(&rel) {
                log::info!(
                    "removed the leftover of an earlier import: {}",
                    store.location(&rel)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{Codec, ImportOptions, Job, import_one};

    /// Imports `input` as `target` of `archive` (PCM).
    fn import(archive: &Archive, input: &std::path::Path, target: &str) {
        let opts = ImportOptions {
            codec: Some(Codec::Pcm),
            ..ImportOptions::default()
        };
        let job = Job {
            input: input.to_path_buf(),
            target: target.into(),
        };
        import_one(archive, &job, &opts).unwrap();
    }

    /// Stages a recording for `x`, lets another import make folder `x` with a
    /// recording in it, then commits with `force`: refused, nothing of the folder lost.
    fn a_folder_made_meanwhile_is_not_replaced(archive: &Archive, input: &std::path::Path) {
        let meta = archive.recording("r").unwrap().meta().clone();
        let staged = StagedRecording::new(archive, "x").unwrap();
        staged.write_stream(b"not read").unwrap();
        import(archive, input, "x/a");
        let before = archive.recording("x/a").unwrap().meta().clone();
        match staged.commit(&meta, true) {
            Err(ArchiveError::NotARecording { what, .. }) => assert_eq!(what, "a folder"),
            other => panic!("committed over a folder: {other:?}"),
        }
        assert_eq!(archive.recording("x/a").unwrap().meta(), &before);
        let listed: Vec<String> = archive
            .recordings()
            .unwrap()
            .into_iter()
            .map(|(p, m)| {
                m.unwrap();
                p
            })
            .collect();
        assert_eq!(listed, ["r", "x/a"]);
        // The folder is a folder still, and `--force` of a recording still replaces.
        assert!(check_replaceable(archive, "x").is_err());
        assert!(check_replaceable(archive, "x/a").is_ok());
        let staged = StagedRecording::new(archive, "x/a").unwrap();
        staged.write_stream(b"not read").unwrap();
        staged.commit(&meta, true).unwrap();
    }

    #[test]
    fn force_swaps_back_a_folder_made_after_the_import_started() {
        let tmp = tempfile::tempdir().unwrap();
        let (archive, _) = crate::test_support::recording(tmp.path(), 1, Codec::Pcm);
        a_folder_made_meanwhile_is_not_replaced(&archive, &tmp.path().join("in.wav"));
        // Nothing is left in the staging area but what pinned readers hold.
        let staged = archive.store().list_dirs(STAGING_DIR).unwrap();
        assert!(staged.iter().all(|n| !n.starts_with("rec-")), "{staged:?}");
    }

    #[test]
    fn force_in_an_object_store_checks_the_target_inside_the_claim() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, _) = crate::test_support::recording(tmp.path(), 1, Codec::Pcm);
        let store = Store::from_object_store(
            Arc::new(object_store::memory::InMemory::new()),
            "memory://a",
            &crate::store::StoreOptions::default(),
        );
        write_group(&store, "", meta::archive_attrs()).unwrap();
        let archive = Archive::open_store(store).unwrap();
        let input = tmp.path().join("in.wav");
        import(&archive, &input, "r");
        a_folder_made_meanwhile_is_not_replaced(&archive, &input);
    }

    #[test]
    fn a_recording_committed_first_is_not_turned_into_a_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let (archive, rec) = crate::test_support::recording(tmp.path(), 1, Codec::Pcm);
        // Another import finds "r" missing and creates the folder after the commit.
        assert!(create_folder(archive.store(), "r").is_err());
        assert_eq!(archive.recording("r").unwrap().meta(), rec.meta());
        create_folder(archive.store(), "f").unwrap();
        create_folder(archive.store(), "f").unwrap();
        assert!(matches!(
            read_group_attrs(archive.store(), "f").unwrap(),
            Node::Group(a) if meta::is_folder(&a)
        ));
    }
}
