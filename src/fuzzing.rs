//! Property checks over bytes from outside, one function per fuzz target (`fuzz/`,
//! `scripts/fuzz.sh`); `tests/fuzz_corpus.rs` replays the committed corpora through them
//! on stable.
//!
//! Each function takes arbitrary bytes and panics only when a property is violated, so
//! any crash is a bug: a parser returns a typed error, or a value that re-serialises,
//! validates, or otherwise agrees with the bytes it came from. Structured inputs (layout
//! parameters, checkpoint tables) are decoded from the bytes with [`Cursor`], which
//! reads zeros past the end, so every byte string is a valid input.

use std::io::Write as _;
use std::path::Path;

use crate::archive::checkpoints::{
    CheckpointWriter, Encoding, Fingerprint, MAX_WARMUP_PACKETS, MultistreamLayout,
    StoredCheckpoints, StoredState, state_digest,
};
use crate::archive::index::{self, PageIndex, PageRow};
use crate::archive::manifest::MANIFEST_KEY;
use crate::archive::ogg::{PacketAssembler, Page, opus_packet_duration_48k, page_len, parse_page};
use crate::archive::opus_head::{OpusHead, opus_tags};
use crate::archive::{ATTR_KEY, Entry, Manifest, RecordingMeta, SourceInfo, parse_utc};
use crate::chunks::served::{self, Bext, Context};
use crate::chunks::{self, Chunk, ChunkId, Collector};
use crate::codec::flac::{
    self, FrameEntry, parse_frame_header, parse_streaminfo, write_frame_header, write_streaminfo,
};
use crate::input::{self, Block, InputError, SampleKind};
use crate::store::{Address, Location, Store, StoreOptions};
use crate::wav::{SampleFormat, WavLayout, encode_f32, encode_i32};

/// A target's name and its property.
pub type Target = (&'static str, fn(&[u8]));

/// Every target: its name (a `fuzz/fuzz_targets/NAME.rs` and a `fuzz/corpus/NAME/`) and
/// its property.
pub const TARGETS: &[Target] = &[
    ("wav_input", wav_input),
    ("flac_input", flac_input),
    ("compressed_input", compressed_input),
    ("flac_scan", flac_scan),
    ("flac_headers", flac_headers),
    ("ogg_pages", ogg_pages),
    ("opus_head", opus_head),
    ("ogg_opus_scan", ogg_opus_scan),
    ("index_rows", index_rows),
    ("checkpoints", checkpoints),
    ("recording_meta", recording_meta),
    ("manifest", manifest),
    ("wav_layout", wav_layout),
    ("kept_chunks", kept_chunks),
];

// --- helpers -----------------------------------------------------------------------------

/// Reads fields off the fuzzer's bytes; past the end every field is zero.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        let b = self.take(N);
        a[..b.len()].copy_from_slice(b);
        a
    }

    fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// A u64 of any magnitude: its bits shifted right by 0 to 64.
    fn wide(&mut self) -> u64 {
        let v = self.u64();
        v.checked_shr(u32::from(self.u8() % 65)).unwrap_or(0)
    }

    fn rest(&mut self) -> &'a [u8] {
        self.take(self.0.len())
    }
}

/// A directory for one check's files, removed when dropped: in `/dev/shm` when there is
/// one, since the stores fsync what they write.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix("zw-fuzz-")
        .tempdir_in(base)
        .expect("a scratch directory")
}

/// A local store at `dir`.
fn local_store(dir: &Path) -> Store {
    Store::open(&Address::Local(dir.to_path_buf()), &StoreOptions::default())
        .expect("a local store")
}

std::thread_local! {
    /// Set while [`quietly`] runs: panics then are the codec libraries' that the input
    /// readers catch (`input::guard`).
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with panics on this thread kept from the panic hook. The input readers turn a
/// codec library's panic into [`InputError::Decode`], as designed; libFuzzer's hook would
/// abort the process at the panic, before the reader can catch it. A panic that escapes
/// `f` is reported here and still fails the check.
fn quietly<T>(f: impl FnOnce() -> T) -> T {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    result.unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("panic escaped the input reader: {what}");
        std::panic::resume_unwind(p)
    })
}

/// FLAC's CRC-8 (x^8 + x^2 + x + 1), bit by bit: an oracle independent of the table the
/// scanner uses.
fn crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in bytes {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// FLAC's CRC-16 (x^16 + x^15 + x^2 + 1), bit by bit.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x8005
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Ogg's CRC-32 (0x04c11db7, unreflected), bit by bit.
fn ogg_crc(bytes: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &b in bytes {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Rewrites the CRC of every whole page in the run of pages at the start of `data`, so
/// that the fuzzer's changes reach what lies behind the CRC check.
fn fix_ogg_crcs(data: &mut [u8]) {
    let mut pos = 0;
    while data[pos..].starts_with(b"OggS") {
        let Some(len) = page_len(&data[pos..]).filter(|&n| pos + n <= data.len()) else {
            break;
        };
        let page = &mut data[pos..pos + len];
        page[22..26].fill(0);
        let crc = ogg_crc(page);
        page[22..26].copy_from_slice(&crc.to_le_bytes());
        pos += len;
    }
}

/// Whether `s` fits in `bits` bits, signed.
fn fits_bits(s: i64, bits: u16) -> bool {
    let half = 1i64 << (bits - 1);
    (-half..half).contains(&s)
}

// --- import inputs -----------------------------------------------------------------------

/// The WAV family reader (RIFF, RF64, BW64, Wave64), through [`input::open`]: see
/// [`check_input`].
pub fn wav_input(data: &[u8]) {
    let _ = check_input(data);
}

/// The FLAC input (claxon), through [`input::open`]: see [`check_input`]. When the
/// stream also passes [`flac::scan`] (it could be stored as it is), libFLAC's decode of
/// its frames, which the mount serves, gives the samples the input reader gave.
pub fn flac_input(data: &[u8]) {
    let Some(samples) = check_input(data) else {
        return;
    };
    let Ok(layout) = flac::scan(data) else {
        return;
    };
    let mut decoded = Vec::with_capacity(samples.len());
    for f in &layout.frames {
        let bytes = &data[f.offset as usize..(f.offset + f.len) as usize];
        match flac::decode_frames(&layout.info, bytes, f.first_sample, u64::from(f.samples)) {
            Ok(v) => decoded.extend(v),
            Err(_) => return,
        }
    }
    assert!(
        decoded == samples,
        "claxon and libFLAC decode the stream differently"
    );
}

/// The symphonia inputs (MP3, Ogg Vorbis, AAC, ALAC), through [`input::open`]: see
/// [`check_input`].
pub fn compressed_input(data: &[u8]) {
    let _ = check_input(data);
}

/// Samples decoded before a check stops reading (a few header bytes can promise hours).
const MAX_CHECKED_SAMPLES: u64 = 1 << 21;

/// `input::open` on `data` as a file: an [`InputError`] naming the file, or a reader
/// whose spec is sane (1..=32 bits, channels and rate positive, kept chunks that
/// `chunks::validate` accepts, an ISO 8601 UTC start time, for WAV no more frames than
/// the bytes can hold) and whose blocks are whole frames of at most the frames asked for,
/// in the spec's kind and bit range, adding up to the promised frame count, or ending in
/// a typed error. Returns the integer samples of a read that got to the end.
fn check_input(data: &[u8]) -> Option<Vec<i32>> {
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    file.write_all(data).expect("writing the input");
    let path = file.path().to_path_buf();
    quietly(|| read_input(&path, data.len() as u64))
}

fn read_input(path: &Path, file_len: u64) -> Option<Vec<i32>> {
    let mut reader = match input::open(path) {
        Ok(r) => r,
        Err(e) => {
            check_input_error(&e, path);
            return None;
        }
    };
    let spec = reader.spec().clone();
    assert!(spec.channels >= 1, "{spec:?}");
    assert!(spec.sample_rate >= 1, "{spec:?}");
    let bits = match spec.kind {
        SampleKind::Int { bits } => {
            assert!((1..=32).contains(&bits), "{spec:?}");
            Some(bits)
        }
        SampleKind::Float32 => None,
    };
    if let Err(e) = chunks::validate(&spec.chunks) {
        panic!("kept chunks a reader would refuse: {e}");
    }
    if let Some(t) = &spec.start_time {
        assert!(is_iso_utc(t), "start time {t:?}");
    }
    if ["wav", "rf64", "bw64", "w64"].contains(&spec.container) {
        let frames = spec.frames.expect("WAV knows its frames");
        let min_bytes = u64::from(bits.map_or(4, |b| b.div_ceil(8)));
        let needs = u128::from(frames) * u128::from(spec.channels) * u128::from(min_bytes);
        assert!(
            needs <= u128::from(file_len),
            "{frames} frames in {file_len} bytes"
        );
    }
    let channels = usize::from(spec.channels);
    let mut frames = 0u64;
    let mut ints = Vec::new();
    for ask in [1usize, 3, 4096, 0, 100_000].into_iter().cycle() {
        if frames * channels as u64 > MAX_CHECKED_SAMPLES {
            return None;
        }
        let block = match reader.read(ask) {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(e) => {
                check_input_error(&e, path);
                return None;
            }
        };
        assert!(!block.is_empty(), "an empty block");
        assert_eq!(block.len() % channels, 0, "a partial frame");
        let n = block.len() / channels;
        assert!(n <= ask.max(1), "{n} frames when {ask} were asked for");
        match (&block, bits) {
            (Block::Int(v), Some(bits)) => {
                if let Some(s) = v.iter().find(|&&s| !fits_bits(i64::from(s), bits)) {
                    panic!("sample {s} outside {bits} bits");
                }
                ints.extend_from_slice(v);
            }
            (Block::Float(_), None) => {}
            _ => panic!("a block of another kind than {:?}", spec.kind),
        }
        frames += n as u64;
    }
    if let Some(promised) = spec.frames {
        assert_eq!(frames, promised, "frames read and promised");
    }
    Some(ints)
}

fn check_input_error(e: &InputError, path: &Path) {
    assert_eq!(e.path(), path);
    assert!(
        e.to_string().starts_with(&path.display().to_string()),
        "{e}"
    );
    if let InputError::Truncated { promised, held, .. } = e {
        assert!(held < promised, "{e}");
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`, as `InputSpec::start_time` promises; a parseable stored time
/// from 1970 on.
fn is_iso_utc(t: &str) -> bool {
    let shape = t.len() == 20
        && t.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    shape && (t < "1970" || parse_utc(t).is_some())
}

// --- FLAC --------------------------------------------------------------------------------

/// [`flac::scan`]: an error, or a layout whose frames tile the bytes after the metadata
/// exactly, each closed by a correct CRC-16 and opened by a header with a correct CRC-8
/// that agrees with STREAMINFO and the frame's place; STREAMINFO re-serialises to its
/// bytes, `stream_info` agrees, the index rows of the frames read back as the frames, and
/// the first frames decode to exactly their samples within the bit depth, or to an error.
pub fn flac_scan(data: &[u8]) {
    let Ok(layout) = flac::scan(data) else {
        return;
    };
    let info = &layout.info;
    let audio = layout.audio_offset as usize;
    assert_eq!(flac::stream_info(&data[..audio]).as_ref(), Ok(info));
    let body: &[u8; 34] = data[8..42].try_into().expect("STREAMINFO is 34 bytes");
    let raw = parse_streaminfo(body);
    assert_eq!(&raw.info, info);
    assert_eq!(&write_streaminfo(&raw), body);
    assert!(!layout.frames.is_empty());
    let (mut at, mut sample) = (audio as u64, 0u64);
    for f in &layout.frames {
        assert_eq!((f.offset, f.first_sample), (at, sample), "{f:?}");
        let bytes = &data[f.offset as usize..(f.offset + f.len) as usize];
        assert_eq!(crc16(bytes), 0, "CRC-16 of {f:?}");
        let (h, len) = parse_frame_header(bytes).expect("a frame starts with a header");
        assert_eq!(crc8(&bytes[..len - 1]), bytes[len - 1], "CRC-8 of {f:?}");
        assert_eq!(h.block_size, f.samples);
        assert_eq!(h.check(info), Ok(()));
        assert_eq!(h.first_sample(info), f.first_sample);
        at += f.len;
        sample += u64::from(f.samples);
    }
    assert_eq!(at, data.len() as u64, "frames end at the end of the file");
    if info.total_samples != 0 {
        assert_eq!(sample, info.total_samples);
    }
    let rows = flac::index_rows(&layout.frames);
    assert_eq!(
        flac::frames_from_index(&rows, data.len() as u64, sample).as_ref(),
        Ok(&layout.frames)
    );
    for f in layout.frames.iter().take(3) {
        check_decode(info, data, f);
    }
}

fn check_decode(info: &flac::StreamInfo, data: &[u8], f: &FrameEntry) {
    let bytes = &data[f.offset as usize..(f.offset + f.len) as usize];
    if let Ok(v) = flac::decode_frames(info, bytes, f.first_sample, u64::from(f.samples)) {
        assert_eq!(
            v.len() as u64,
            u64::from(f.samples) * u64::from(info.channels)
        );
        let bits = info.bits_per_sample;
        if let Some(s) = v.iter().find(|&&s| !fits_bits(i64::from(s), bits)) {
            panic!("decoded sample {s} outside {bits} bits");
        }
    }
}

/// A FLAC frame header at the start of the bytes: an error, or a header whose CRC-8 is
/// right, that re-serialises (canonically, never longer) to bytes that parse back to it;
/// the first 34 bytes as STREAMINFO re-serialise to themselves; `stream_info` gives an
/// error or values it promises (rate, block sizes, 1..=8 channels, 4..=24 bits).
pub fn flac_headers(data: &[u8]) {
    if let Ok((h, len)) = parse_frame_header(data) {
        assert!((6..=data.len()).contains(&len), "{len}");
        assert_eq!(crc8(&data[..len - 1]), data[len - 1]);
        let mut out = Vec::new();
        write_frame_header(&mut out, &h);
        assert!(out.len() <= len, "{h:?}: {} bytes for {len}", out.len());
        assert_eq!(parse_frame_header(&out), Ok((h, out.len())));
    }
    if let Some(body) = data.first_chunk::<34>() {
        assert_eq!(&write_streaminfo(&parse_streaminfo(body)), body);
    }
    if let Ok(info) = flac::stream_info(data) {
        assert!(info.sample_rate > 0, "{info:?}");
        assert!(info.max_block_size >= 16 && info.min_block_size <= info.max_block_size);
        assert!((1..=8).contains(&info.channels) && (4..=24).contains(&info.bits_per_sample));
    }
}

// --- Ogg and Opus ------------------------------------------------------------------------

/// The first byte's bit 0 asks for the pages' CRCs to be fixed first; the rest is a run
/// of Ogg pages. Each page parses to an error or to fields that re-serialise (with an
/// independently computed CRC) to exactly its bytes, `page_len` agreeing; the packet
/// assembler fed the pages emits exactly each page's complete packets (the first may
/// continue from earlier pages or be dropped as headless), never more bytes than it was
/// given, and Opus packet durations are whole 2.5 ms frames up to 120 ms.
pub fn ogg_pages(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut data = rest.to_vec();
    if flags & 1 != 0 {
        fix_ogg_crcs(&mut data);
    }
    let mut asm = PacketAssembler::new();
    let (mut given, mut emitted) = (0usize, 0usize);
    let mut pos = 0;
    while pos < data.len() {
        let rest = &data[pos..];
        let page = match parse_page(rest, pos as u64) {
            Ok(p) => p,
            Err(_) => break,
        };
        assert!(page.len <= rest.len());
        assert_eq!(page_len(rest), Some(page.len));
        assert_eq!(serialise_page(&page), &rest[..page.len]);
        given += page.body.len();
        let mut got = Vec::new();
        let Ok(()) = asm.push::<std::convert::Infallible>(&page, |p| {
            got.push(p.to_vec());
            Ok(())
        });
        emitted += got.iter().map(Vec::len).sum::<usize>();
        assert!(emitted <= given, "{emitted} bytes out of {given}");
        check_packets(&page, &got);
        for p in &got {
            if let Some(d) = opus_packet_duration_48k(p) {
                assert!(d % 120 == 0 && (120..=5760).contains(&d), "{d}");
            }
        }
        pos += page.len;
    }
}

/// The page as it is written, CRC included.
fn serialise_page(page: &Page<'_>) -> Vec<u8> {
    let mut v = b"OggS\0".to_vec();
    v.push(page.header_type);
    v.extend_from_slice(&page.granule.to_le_bytes());
    v.extend_from_slice(&page.serial.to_le_bytes());
    v.extend_from_slice(&page.sequence.to_le_bytes());
    v.extend_from_slice(&[0; 4]);
    v.push(page.lacing.len() as u8);
    v.extend_from_slice(page.lacing);
    v.extend_from_slice(page.body);
    let crc = ogg_crc(&v);
    v[22..26].copy_from_slice(&crc.to_le_bytes());
    v
}

/// The packets emitted for `page` against the page's own lacing.
fn check_packets(page: &Page<'_>, got: &[Vec<u8>]) {
    let mut local: Vec<&[u8]> = Vec::new();
    let (mut start, mut end) = (0, 0);
    for &l in page.lacing {
        end += usize::from(l);
        if l < 255 {
            local.push(&page.body[start..end]);
            start = end;
        }
    }
    if !page.continued() || local.is_empty() {
        assert_eq!(got, local, "packets of a page");
        return;
    }
    let k = local.len();
    assert!(got.len() == k || got.len() == k - 1, "{} of {k}", got.len());
    let later = &got[got.len() - (k - 1)..];
    assert_eq!(later, &local[1..], "packets after the continued one");
    if got.len() == k {
        assert!(got[0].ends_with(local[0]), "a continued packet's tail");
    }
}

/// [`OpusHead::parse`]: an error, or a header that re-serialises to the same bytes
/// (version written as 1) and parses back equal, with a mapping that agrees with the
/// channel count; an `OpusTags` made with the bytes as vendor string is laid out as RFC
/// 7845 says.
pub fn opus_head(data: &[u8]) {
    if let Ok(h) = OpusHead::parse(data) {
        let b = h.to_bytes();
        assert_eq!(OpusHead::parse(&b).as_ref(), Ok(&h));
        assert_eq!(data[8] & 0xF0, 0);
        assert_eq!((&b[..8], b[8], &b[9..]), (&data[..8], 1, &data[9..b.len()]));
        let m = &h.mapping;
        assert_eq!(m.channels(), data[9]);
        assert_eq!(m.table().len(), usize::from(m.channels()));
        let decoded = u16::from(m.streams()) + u16::from(m.coupled());
        assert!(m.coupled() <= m.streams() && m.streams() >= 1);
        assert!(
            m.table()
                .iter()
                .all(|&t| t == 255 || u16::from(t) < decoded)
        );
    }
    let vendor = String::from_utf8_lossy(data);
    let t = opus_tags(&vendor);
    let n = vendor.len();
    assert_eq!(t.len(), 8 + 4 + n + 4);
    assert_eq!(&t[..8], b"OpusTags");
    assert_eq!(u32::from_le_bytes(t[8..12].try_into().unwrap()) as usize, n);
    assert_eq!(&t[12..12 + n], vendor.as_bytes());
    assert_eq!(&t[12 + n..], &[0; 4]);
}

/// [`index::scan`] of an Ogg Opus stream (the first byte: bit 0 fixes the CRCs, bits 1..
/// choose the decoding rate): an error, or a page index whose rows are real pages in
/// order with growing counts, whose final granule is within pre-skip and the samples
/// decoded, whose rows survive their stored form, whose OpusHead is the first packet of
/// the first page (where readers take it from), and whose lookups find, for every
/// packet, the page it ends on and a byte range inside the stream.
pub fn ogg_opus_scan(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let rate = [48_000, 24_000, 16_000, 12_000, 8_000][usize::from(flags >> 1) % 5];
    let mut data = rest.to_vec();
    if flags & 1 != 0 {
        fix_ogg_crcs(&mut data);
    }
    let Ok(layout) = index::scan(&data, rate) else {
        return;
    };
    let factor = u64::from(48_000 / rate);
    let rows = &layout.rows;
    let last = rows.last().expect("at least one audio page");
    assert!(layout.total_packets > 0 && layout.total_packets == last.packets_done);
    for (i, r) in rows.iter().enumerate() {
        assert!(parse_page(&data[r.offset as usize..], r.offset).is_ok());
        if i > 0 {
            let p = &rows[i - 1];
            assert!(p.offset < r.offset && p.packets_done <= r.packets_done);
            assert!(p.samples_done <= r.samples_done);
        }
        assert_eq!(PageRow::from_i64(&r.to_i64()), Some(*r));
    }
    assert_eq!(
        index::digest(rows),
        index::digest_rows(rows.iter().map(PageRow::to_i64))
    );
    let g = layout.final_granule;
    assert!(g >= i64::from(layout.head.pre_skip) && g as u64 <= last.samples_done * factor);
    assert_eq!(
        OpusHead::parse(&layout.head.to_bytes()).as_ref(),
        Ok(&layout.head)
    );
    // Readers take OpusHead from the first page alone (`RecordingStore::read_opus_head`).
    let first = parse_page(&data, 0).expect("a scanned stream starts with a page");
    let mut head = None;
    let Ok(()) = PacketAssembler::new().push::<std::convert::Infallible>(&first, |p| {
        head.get_or_insert_with(|| p.to_vec());
        Ok(())
    });
    let head = head.expect("OpusHead ends on the first page");
    assert_eq!(OpusHead::parse(&head).as_ref(), Ok(&layout.head));
    let ix = PageIndex::new(rows.clone(), data.len() as u64);
    assert_eq!(ix.final_granule(), Some(g as u64));
    assert_eq!(ix.total_samples(), layout.total_samples());
    check_lookups(&ix, data.len() as u64);
}

/// For packets spread over the index: the page that ends each, and the byte range of
/// the pages from the first one needed, inside the stream.
fn check_lookups(ix: &PageIndex, stream_bytes: u64) {
    let total = ix.total_packets();
    let step = (total / 64).max(1);
    for p in (0..total).step_by(step as usize) {
        let k = ix.page_ending_packet(p);
        assert!(k < ix.rows().len(), "packet {p}");
        assert!(ix.rows()[k].packets_done > p && ix.packets_before(k) <= p);
        let first = ix.first_page_for_packet(p);
        assert!(first <= k);
        let range = ix.byte_range(first, k);
        assert!(
            range.start < range.end && range.end <= stream_bytes,
            "{range:?}"
        );
    }
}

// --- stored index and checkpoints --------------------------------------------------------

/// Stored `index` rows (after a u64 stream length and a u64 frame count; then four
/// little-endian i64 per row): an Opus row decodes exactly when its counts are not
/// negative and re-encodes to itself, both digests agree, a FLAC frame table from the
/// rows is an error or frames that tile the stream from sample 0 to the frame count and
/// re-encode to the rows, and lookups over rows that are in order stay in the stream.
pub fn index_rows(data: &[u8]) {
    let mut c = Cursor(data);
    let stream_bytes = c.wide();
    let total = c.wide();
    let rows: Vec<[i64; 4]> = c
        .rest()
        .chunks(32)
        .map(|b| {
            let mut r = Cursor(b);
            [0; 4].map(|_: i64| r.u64() as i64)
        })
        .collect();
    let pages: Option<Vec<PageRow>> = rows
        .iter()
        .map(|r| {
            let p = PageRow::from_i64(r);
            assert_eq!(p.is_some(), r[0] >= 0 && r[2] >= 0 && r[3] >= 0, "{r:?}");
            if let Some(p) = p {
                assert_eq!(&p.to_i64(), r);
            }
            p
        })
        .collect();
    if let Ok(frames) = flac::frames_from_index(&rows, stream_bytes, total) {
        assert_eq!(frames.len(), rows.len());
        let (mut at, mut sample) = (frames[0].offset, 0);
        for f in &frames {
            assert!(f.len > 0 && f.samples > 0, "{f:?}");
            assert_eq!((f.offset, f.first_sample), (at, sample));
            at += f.len;
            sample += u64::from(f.samples);
        }
        assert!(at <= stream_bytes && sample == total);
        assert_eq!(flac::index_rows(&frames), rows);
    }
    let Some(pages) = pages else { return };
    assert_eq!(
        index::digest(&pages),
        index::digest_rows(rows.iter().copied())
    );
    let ordered = pages.windows(2).all(|w| {
        w[0].offset < w[1].offset
            && w[0].packets_done <= w[1].packets_done
            && w[0].samples_done <= w[1].samples_done
    });
    let ix = PageIndex::new(pages.clone(), stream_bytes);
    if ordered && pages.last().is_some_and(|r| r.offset < stream_bytes) {
        check_lookups(&ix, stream_bytes);
    }
    for k in 0..pages.len() {
        let _ = (ix.packets_before(k), ix.samples_before(k));
    }
}

/// A `checkpoints` group written by [`CheckpointWriter`] from fields in the bytes
/// (mode, state size, count, warm-up, positions, states), optionally rewritten to the
/// `full` encoding, and optionally damaged (one stored file cut, a byte flipped, or
/// replaced by the remaining bytes). Intact, it loads as written: every state comes back
/// as stored and its digest check holds (and fails for another state). Damaged, loading
/// and reading never panic, and what does come back is consistent: a `Full` state
/// passes its digest check, a seed and a residual are of the state's size.
pub fn checkpoints(data: &[u8]) {
    let mut c = Cursor(data);
    let mode = c.u8();
    let size = 1 + u64::from(c.u8() % 48);
    let count = usize::from(c.u8() % 6);
    let warmup = 1 + u64::from(c.u16()) % MAX_WARMUP_PACKETS;
    let interval = c.wide();
    let fingerprint = Fingerprint {
        libopus: "libopus fuzz".into(),
        state_size: size,
        silk_state_size: u64::from(c.u16()),
        target: "fuzz".into(),
        arch: i64::from(c.u8()),
        selftest: hex::encode(c.take(4)),
        layout: (mode & 2 != 0).then(|| MultistreamLayout {
            family: 1,
            streams: 2,
            coupled_streams: 1,
            mapping: vec![0, 1, 2],
        }),
    };
    let (mut packet, mut sample) = (0u64, 0u64);
    let mut rows = Vec::new();
    let mut states = Vec::new();
    for _ in 0..count {
        packet += u64::from(c.u8());
        sample += u64::from(c.u16());
        rows.push((packet, sample));
        let mut blob = || {
            let b = c.take(size as usize);
            let mut v = b.to_vec();
            v.resize(size as usize, 0);
            v
        };
        states.push([blob(), blob(), blob()]);
    }
    let tmp = scratch_dir();
    let store = local_store(tmp.path());
    let mut w = CheckpointWriter::create(
        &store,
        "rec/checkpoints",
        &fingerprint,
        interval,
        warmup,
        rows.clone(),
    )
    .expect("creating checkpoints");
    for [state, seed, residual] in &states {
        w.push(state, seed, residual).expect("pushing a state");
    }
    w.finish().expect("finishing checkpoints");
    let group = tmp.path().join("rec/checkpoints");
    let full = mode & 4 != 0;
    if full {
        rewrite_as_full(&group, &rows, &states);
    }
    let damaged = mode & 8 != 0 && damage(&group, &mut c);
    let loaded = StoredCheckpoints::load(&store, "rec");
    if !damaged {
        let ck = loaded
            .expect("intact checkpoints load")
            .expect("they exist");
        let want_size = if full { 2 * size } else { size };
        assert_eq!(ck.fingerprint.state_size, want_size);
        assert_eq!(ck.interval, interval);
        assert_eq!(ck.positions(), rows);
        for (j, [state, seed, residual]) in states.iter().enumerate() {
            let got = ck.state(j).expect("an intact state");
            let whole = [seed.as_slice(), residual].concat();
            if full {
                assert_eq!(ck.encoding, Encoding::Full);
                assert_eq!(got, StoredState::Full(whole.clone()));
                assert!(ck.check(j, &whole).is_ok());
            } else {
                let from_packet = rows[j].0.saturating_sub(warmup);
                let want = StoredState::Seeded {
                    seed: seed.clone(),
                    residual: residual.clone(),
                    from_packet,
                };
                assert_eq!(got, want);
                assert!(ck.check(j, state).is_ok());
                let mut other = state.clone();
                other[0] ^= 1;
                assert!(ck.check(j, &other).is_err());
            }
        }
        assert!(ck.state(count).is_err());
        return;
    }
    let Ok(Some(ck)) = loaded else { return };
    for j in 0..ck.rows.len().min(16) {
        match ck.state(j) {
            Ok(StoredState::Full(b)) => assert!(ck.check(j, &b).is_ok(), "state {j}"),
            Ok(StoredState::Seeded {
                seed,
                residual,
                from_packet,
            }) => {
                assert_eq!(seed.len() as u64, ck.fingerprint.state_size);
                assert_eq!(residual.len(), seed.len());
                assert!(from_packet <= ck.rows[j].packet);
            }
            Err(_) => {}
        }
    }
    let _ = ck.disk_bytes();
}

/// Rewrites a `seeded` group as the `full` encoding of states `seed ‖ residual`: the
/// group's attributes and the digests (an uncompressed chunk).
fn rewrite_as_full(group: &Path, rows: &[(u64, u64)], states: &[[Vec<u8>; 3]]) {
    let meta_path = group.join("zarr.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).expect("group zarr.json"))
            .expect("group JSON");
    let a = &mut meta["attributes"][ATTR_KEY];
    a["encoding"] = "full".into();
    let size = a["fingerprint"]["state_size"].as_u64().expect("state_size");
    a["fingerprint"]["state_size"] = (2 * size).into();
    std::fs::write(&meta_path, serde_json::to_vec(&meta).expect("JSON")).expect("rewriting");
    if states.is_empty() {
        return;
    }
    let digests: Vec<u8> = rows
        .iter()
        .zip(states)
        .flat_map(|(&(p, s), [_, seed, residual])| {
            state_digest(p, s, &[seed.as_slice(), residual].concat())
        })
        .collect();
    let chunk = group.join("digests/c/0/0");
    let old = std::fs::read(&chunk).expect("the digests chunk");
    assert_eq!(old.len(), digests.len(), "digests are stored uncompressed");
    std::fs::write(&chunk, digests).expect("rewriting digests");
}

/// Damages one file under `dir` as the cursor says; false when there was nothing to do.
fn damage(dir: &Path, c: &mut Cursor<'_>) -> bool {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("listing").flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return false;
    }
    let file = &files[usize::from(c.u8()) % files.len()];
    let mut bytes = std::fs::read(file).expect("reading a stored file");
    match c.u8() % 3 {
        0 => bytes.truncate(usize::from(c.u16())),
        1 if !bytes.is_empty() => {
            let at = usize::from(c.u16()) % bytes.len();
            bytes[at] ^= c.u8() | 1;
        }
        _ => bytes = c.rest().to_vec(),
    }
    std::fs::write(file, bytes).expect("damaging a stored file");
    true
}

// --- metadata JSON -----------------------------------------------------------------------

/// A recording's `zarr_wavfs` attribute as JSON: an error, or metadata that serialises
/// and parses back equal; `from_attrs` accepts it exactly when `validate` does; accessors
/// do not panic; valid metadata stays valid sealed (and equal, if it was sealed), its
/// written attributes read back as the sealed value, and its served WAV file has a
/// layout (or a typed error) whose header is as long as it says.
pub fn recording_meta(data: &[u8]) {
    let Ok(m) = serde_json::from_slice::<RecordingMeta>(data) else {
        return;
    };
    let json = serde_json::to_vec(&m).expect("metadata serialises");
    let back: RecordingMeta = serde_json::from_slice(&json).expect("its JSON parses");
    assert_eq!(back, m);
    let dir = Location::from("fuzz/rec");
    let valid = m.validate(&dir).is_ok();
    let mut attrs = serde_json::Map::new();
    attrs.insert(
        ATTR_KEY.into(),
        serde_json::to_value(&m).expect("a JSON value"),
    );
    assert_eq!(RecordingMeta::from_attrs(&dir, &attrs).is_ok(), valid);
    let _ = (m.sample_kind(), m.start_system_time(), m.duration_secs());
    if !valid {
        return;
    }
    let sealed = m.sealed();
    assert!(sealed.validate(&dir).is_ok(), "sealed valid metadata");
    if !m.meta_sha256.is_empty() {
        assert_eq!(sealed, m);
    }
    let written = RecordingMeta::from_attrs(&dir, &m.to_attrs()).expect("written attributes");
    assert_eq!(written, sealed);
    if m.codec == "opus" {
        let _ = m.pre_skip_samples();
    }
    let format = crate::wav_file::served_format(None, &m);
    if let Ok(l) = crate::wav_file::layout_for(&m, 0..m.frames, format, None) {
        assert_eq!(l.header().len() as u64, l.header_len());
        assert_eq!(l.frames, m.frames);
    }
}

/// The archive manifest as stored: unreadable (`None`), or a manifest whose tree has
/// non-empty names without slashes, each recording at its folder's path, whose listing
/// check does not panic, and that is written again byte for byte after a read of what
/// it wrote.
pub fn manifest(data: &[u8]) {
    let tmp = scratch_dir();
    let store = local_store(tmp.path());
    store
        .put_atomic(MANIFEST_KEY, bytes::Bytes::copy_from_slice(data))
        .expect("writing the manifest");
    let Some(m) = Manifest::read(&store).expect("reading the manifest") else {
        return;
    };
    check_entries(&m.entries(&store), "");
    let _ = m.matches(&store);
    m.write(&store).expect("writing it back");
    let first = store
        .get(MANIFEST_KEY)
        .expect("get")
        .expect("written")
        .bytes;
    let again = Manifest::read(&store)
        .expect("reading")
        .expect("what it wrote reads");
    again.write(&store).expect("writing again");
    let second = store
        .get(MANIFEST_KEY)
        .expect("get")
        .expect("written")
        .bytes;
    assert_eq!(
        first, second,
        "the manifest re-serialises to the same bytes"
    );
}

fn check_entries(entries: &[Entry], parent: &str) {
    for e in entries {
        let name = e.name();
        assert!(!name.is_empty() && !name.contains('/'), "name {name:?}");
        let path = if parent.is_empty() {
            name.to_string()
        } else {
            format!("{parent}/{name}")
        };
        match e {
            Entry::Folder { children, .. } => check_entries(children, &path),
            Entry::Recording { path: p, .. } => assert_eq!(p, &path),
        }
    }
}

// --- the served WAV file -----------------------------------------------------------------

/// A WAV layout from fields in the bytes (shape and kept chunks; or a PCM recording's
/// metadata, a frame range and time expansion through `wav_file::layout_for`), and reads
/// of it at offsets near its boundaries: `WavLayout::new` gives a typed error or a
/// layout whose header is as long as it says; every `map_read` plan tiles the read
/// clamped to the file exactly (header bytes, then data from the right frame and byte,
/// then the pad byte, in order); a small file, materialised, reads back through the WAV
/// input reader with the layout's shape, chunks and samples, and the bytes of each plan
/// assembled as the mount does equal that file's bytes.
pub fn wav_layout(data: &[u8]) {
    let mut c = Cursor(data);
    let sel = c.u8();
    let channels = if sel & 1 == 0 {
        u16::from(c.u8() % 8) + 1
    } else {
        c.u16()
    };
    let sample_rate = if sel & 2 == 0 {
        [8_000, 44_100, 48_000, 96_000, 384_000][usize::from(c.u8()) % 5]
    } else {
        c.u32()
    };
    let frames = if sel & 8 == 0 {
        u64::from(c.u16() % 512)
    } else {
        c.wide()
    };
    let format = [
        SampleFormat::S16,
        SampleFormat::S24,
        SampleFormat::S32,
        SampleFormat::F32,
    ][usize::from(c.u8()) % 4];
    let chunks = fuzzed_chunks(&mut c, false);
    let layout = if sel & 4 == 0 {
        match WavLayout::new(channels, sample_rate, frames, format) {
            Ok(l) => l.with_chunks(chunks),
            Err(_) => return,
        }
    } else {
        let meta = pcm_meta(&mut c, channels, sample_rate, frames, format, chunks);
        if meta.validate(&Location::from("fuzz")).is_err() {
            return;
        }
        let first = c.wide().min(frames);
        let end = first.saturating_add(c.wide()).min(frames);
        let expansion = (c.u8() & 1 == 1).then(|| u32::from(c.u8()));
        match crate::wav_file::layout_for(&meta, first..end, format, expansion) {
            Ok(l) => l,
            Err(_) => return,
        }
    };
    let header = layout.header();
    let header_len = layout.header_len();
    assert_eq!(header.len() as u64, header_len);
    let data_len = layout.data_len();
    let file_len = layout.file_len();
    assert_eq!(file_len, header_len + data_len + data_len % 2);
    let mut reads = Vec::new();
    for _ in 0..4 {
        let near = [0, header_len, header_len + data_len, file_len][usize::from(c.u8()) % 4];
        let offset = match c.u8() % 3 {
            0 => c.u64(),
            _ => near.wrapping_add(u64::from(c.u8())).wrapping_sub(128),
        };
        let len = match c.u8() % 3 {
            0 => c.u64(),
            1 => u64::from(c.u16()),
            _ => u64::from(c.u8() % 4),
        };
        reads.push((offset, len));
    }
    for &(offset, len) in &reads {
        check_plan(&layout, offset, len);
    }
    if file_len <= 1 << 16 {
        check_materialised(&layout, &header, &reads, &mut c);
    }
}

/// Chunks with printable, non-structural ids (often ones the served file rewrites), of
/// bodies from the cursor; `any_id` allows every id.
fn fuzzed_chunks(c: &mut Cursor<'_>, any_id: bool) -> Vec<Chunk> {
    const IDS: [&[u8; 4]; 7] = [
        b"bext", b"cue ", b"smpl", b"fact", b"guan", b"LIST", b"iXML",
    ];
    let n = c.u8() % 5;
    (0..n)
        .map(|_| {
            let pick = c.u8();
            let mut id = match IDS.get(usize::from(pick % 9)) {
                Some(id) => **id,
                None => c.array::<4>(),
            };
            if !any_id && !ChunkId(id).is_printable() {
                id = id.map(|b| 0x20 + b % 95);
            }
            if !any_id && ChunkId(id).is_structural() {
                id[0] = b'x';
            }
            let len = match c.u8() % 4 {
                0 => 602,
                1 => usize::from(c.u8()),
                _ => usize::from(c.u16() % 2048),
            };
            Chunk::new(ChunkId(id), c.take(len).to_vec())
        })
        .collect()
}

/// A PCM recording's metadata of this shape, with a start time and a source from the
/// cursor.
fn pcm_meta(
    c: &mut Cursor<'_>,
    channels: u16,
    sample_rate: u32,
    frames: u64,
    format: SampleFormat,
    chunks: Vec<Chunk>,
) -> RecordingMeta {
    let start_time = (c.u8() & 1 == 1).then(|| {
        let frac = match c.u8() % 3 {
            0 => String::new(),
            1 => format!(".{}", c.u8()),
            _ => format!(".{:09}", c.u32() % 1_000_000_000),
        };
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}Z",
            1970 + c.u16() % 8030,
            1 + c.u8() % 12,
            1 + c.u8() % 28,
            c.u8() % 24,
            c.u8() % 60,
            c.u8() % 60
        )
    });
    let source = (c.u8() & 1 == 1).then(|| SourceInfo {
        name: String::from_utf8_lossy(c.take(16)).into_owned(),
        size: c.u64(),
        sha256: hex::encode(c.take(32)),
    });
    let sample_format = match format {
        SampleFormat::S16 => "int16",
        SampleFormat::S24 => "int24",
        SampleFormat::S32 => "int32",
        SampleFormat::F32 => "float32",
    };
    RecordingMeta {
        kind: "recording".into(),
        format_version: 5,
        codec: "pcm".into(),
        channels,
        frames,
        sample_rate,
        original_sample_rate: sample_rate,
        sample_format: sample_format.into(),
        pre_skip: 0,
        start_time,
        source,
        stream_bytes: 0,
        index_rows: 0,
        index_sha256: String::new(),
        chunks,
        meta_sha256: String::new(),
    }
    .sealed()
}

/// One `map_read` plan against the read it answers.
fn check_plan(l: &WavLayout, offset: u64, len: u64) {
    let (header_len, data_len, file_len) = (l.header_len(), l.data_len(), l.file_len());
    let p = l.map_read(offset, len);
    let start = offset.min(file_len);
    let end = offset.saturating_add(len).min(file_len);
    let h = p.header.end.saturating_sub(p.header.start);
    assert_eq!(
        h + p.data_bytes + p.pad,
        end - start,
        "{p:?} for {offset}+{len}"
    );
    assert!(
        p.header.start <= p.header.end && p.header.end <= header_len,
        "{p:?}"
    );
    if h > 0 {
        assert_eq!(p.header.start, start, "{p:?}");
    }
    // Where the data piece starts in the file, and that it follows the header piece.
    let data_at = start + h;
    if p.data_bytes > 0 {
        let ba = l.block_align();
        assert!(p.skip < ba, "{p:?}");
        assert_eq!(header_len + p.frames.start * ba + p.skip, data_at, "{p:?}");
        let span = (p.frames.end - p.frames.start) * ba;
        assert!(span >= p.skip + p.data_bytes && span - ba < p.skip + p.data_bytes);
        assert!(p.frames.end <= l.frames);
    } else {
        assert!(p.frames.is_empty() && p.skip == 0, "{p:?}");
    }
    if p.pad == 1 {
        assert_eq!(data_at + p.data_bytes, header_len + data_len, "{p:?}");
        assert_eq!(data_len % 2, 1);
    } else {
        assert!(p.pad == 0);
    }
    if h > 0 && p.data_bytes + p.pad > 0 {
        assert_eq!(p.header.end, header_len, "{p:?}");
    }
}

/// The whole file of a small layout, read back by the WAV input reader, and each read
/// assembled from its plan.
fn check_materialised(l: &WavLayout, header: &[u8], reads: &[(u64, u64)], c: &mut Cursor<'_>) {
    let n = (l.frames * u64::from(l.channels)) as usize;
    let seed = c.rest();
    let word = |i: usize| {
        let b = |k: usize| {
            seed.get((4 * i + k) % seed.len().max(1))
                .copied()
                .unwrap_or(0)
        };
        u32::from_le_bytes([b(0), b(1), b(2), b(3)]) ^ (i as u32).wrapping_mul(0x9E37_79B9)
    };
    let bits = l.format.bits();
    let mut encoded = Vec::new();
    let samples: Block = if l.format == SampleFormat::F32 {
        let v: Vec<f32> = (0..n).map(|i| f32::from_bits(word(i))).collect();
        encode_f32(&v, l.format, &mut encoded);
        Block::Float(v)
    } else {
        let v: Vec<i32> = (0..n)
            .map(|i| (word(i) as i32) >> (32 - u32::from(bits)))
            .collect();
        encode_i32(&v, bits, l.format, &mut encoded);
        Block::Int(v)
    };
    assert_eq!(encoded.len() as u64, l.data_len());
    let mut file_bytes = header.to_vec();
    file_bytes.extend_from_slice(&encoded);
    if encoded.len() % 2 == 1 {
        file_bytes.push(0);
    }
    assert_eq!(file_bytes.len() as u64, l.file_len());
    for &(offset, len) in reads {
        let p = l.map_read(offset, len);
        let mut got = header[p.header.start as usize..p.header.end as usize].to_vec();
        if p.data_bytes > 0 {
            let ba = l.block_align() as usize;
            let frames = &encoded[p.frames.start as usize * ba..p.frames.end as usize * ba];
            got.extend_from_slice(&frames[p.skip as usize..(p.skip + p.data_bytes) as usize]);
        }
        got.extend(std::iter::repeat_n(0, p.pad as usize));
        let start = offset.min(l.file_len()) as usize;
        assert_eq!(
            got,
            file_bytes[start..start + got.len()],
            "read {offset}+{len}"
        );
    }
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    file.write_all(&file_bytes).expect("writing the WAV file");
    let mut r = input::open(file.path()).expect("the served WAV file reads");
    let spec = r.spec().clone();
    assert_eq!(spec.container, "wav");
    assert_eq!(
        (spec.channels, spec.sample_rate),
        (l.channels, l.sample_rate)
    );
    assert_eq!(spec.frames, Some(l.frames));
    let want_kind = match l.format {
        SampleFormat::F32 => SampleKind::Float32,
        f => SampleKind::Int { bits: f.bits() },
    };
    assert_eq!(spec.kind, want_kind);
    let mut kept = Collector::default();
    for ch in &l.chunks {
        kept.offer(ch.clone());
    }
    assert_eq!(
        spec.chunks, kept.kept,
        "the served chunks are kept on reading"
    );
    let (mut ints, mut floats) = (Vec::new(), Vec::new());
    while let Some(b) = r.read(usize::MAX).expect("reading the served file") {
        match b {
            Block::Int(v) => ints.extend(v),
            Block::Float(v) => floats.extend(v),
        }
    }
    match samples {
        Block::Int(v) => assert!(ints == v, "the samples read back"),
        Block::Float(v) => {
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert!(bits(&floats) == bits(&v), "the float samples read back");
        }
    }
}

/// Kept chunks from the bytes (some of the ids the served file rewrites, bodies of any
/// content) served for a part of a recording: one chunk out for each in, in order, plus a
/// leading `bext` when the start time is known and none was kept; chunks without a rule
/// unchanged; `fact` says the frames served, `cue ` points and `smpl` loops are moved
/// inside the part (or dropped), GUANO gets its `TE` line, `bext` the start time; the
/// text fields and `INFO` entries of any chunk decode without panicking; valid chunks
/// survive their stored JSON form.
pub fn kept_chunks(data: &[u8]) {
    let mut c = Cursor(data);
    let kept = fuzzed_chunks(&mut c, true);
    let total = c.wide();
    let first = c.wide().min(total);
    let frames = c.wide().min(total - first);
    let bext = (c.u8() & 1 == 1).then(|| Bext {
        description: {
            let n = usize::from(c.u8() % 64);
            String::from_utf8_lossy(c.take(n)).into_owned()
        },
        date: String::from_utf8_lossy(c.take(10)).into_owned(),
        time: String::from_utf8_lossy(c.take(8)).into_owned(),
        time_reference: c.u64(),
    });
    let time_expansion = (c.u8() & 1 == 1).then(|| c.u32());
    let ctx = Context {
        first,
        frames,
        total,
        bext: bext.clone(),
        time_expansion,
    };
    let out = served::served(&kept, &ctx);
    let added = bext.is_some() && !kept.iter().any(|k| k.id == ChunkId::BEXT);
    assert_eq!(out.len(), kept.len() + usize::from(added));
    let part = first != 0 || frames != total;
    let mut seen_bext = false;
    for (k, o) in kept.iter().zip(&out[usize::from(added)..]) {
        assert_eq!(k.id, o.id);
        check_served_chunk(k, o, &ctx, part, &mut seen_bext);
    }
    if let (true, Some(b)) = (added, &bext) {
        assert_eq!(out[0].id, ChunkId::BEXT);
        assert_eq!(out[0].body.len(), served::BEXT_LEN);
        assert_eq!(out[0].body[338..346], b.time_reference.to_le_bytes());
    }
    for ch in kept.iter().chain(&out) {
        let _ = chunks::fields::fields(ch);
        for (_, text) in chunks::info::entries(&ch.body) {
            assert!(text.len() <= ch.body.len());
        }
    }
    if chunks::validate(&kept).is_ok() {
        let json = serde_json::to_string(&kept).expect("chunks serialise");
        let back: Vec<Chunk> = serde_json::from_str(&json).expect("their JSON parses");
        assert_eq!(back, kept);
    }
}

/// One kept chunk against its served form.
fn check_served_chunk(k: &Chunk, o: &Chunk, ctx: &Context, part: bool, seen_bext: &mut bool) {
    let u32_at = |b: &[u8], at: usize| {
        b.get(at..at + 4)
            .map(|x| u32::from_le_bytes(x.try_into().unwrap()))
    };
    match k.id {
        ChunkId::BEXT if !*seen_bext => {
            *seen_bext = true;
            if let Some(b) = &ctx.bext {
                assert!(o.body.len() >= 348);
                assert_eq!(o.body[338..346], b.time_reference.to_le_bytes());
            } else {
                assert_eq!(o.body.len(), k.body.len());
            }
        }
        ChunkId::FACT if k.body.len() >= 4 => {
            let n = u32::try_from(ctx.frames).unwrap_or(u32::MAX);
            assert_eq!(u32_at(&o.body, 0), Some(n));
            assert_eq!(o.body[4..], k.body[4..]);
        }
        ChunkId::CUE if part => {
            let Some(n) = u32_at(&k.body, 0).filter(|&n| k.body.len() >= 4 + 24 * n as usize)
            else {
                return assert_eq!(o, k);
            };
            let m = u32_at(&o.body, 0).expect("a count") as usize;
            assert!(m <= n as usize);
            assert_eq!(o.body.len(), k.body.len() - 24 * (n as usize - m));
            for p in o.body[4..4 + 24 * m].chunks_exact(24) {
                assert!(u64::from(u32_at(p, 20).unwrap()) <= ctx.frames);
            }
        }
        ChunkId::SMPL if part => {
            let Some(n) = u32_at(&k.body, 28).filter(|&n| k.body.len() >= 36 + 24 * n as usize)
            else {
                return assert_eq!(o, k);
            };
            let m = u32_at(&o.body, 28).expect("a count") as usize;
            assert!(m <= n as usize);
            assert_eq!(o.body.len(), k.body.len() - 24 * (n as usize - m));
        }
        ChunkId::GUANO => match ctx.time_expansion {
            Some(f) => {
                let text = String::from_utf8_lossy(&o.body);
                let te = format!("TE: {f}");
                assert!(text.lines().any(|l| l == te), "no {te} in {text:?}");
            }
            None => assert_eq!(o, k),
        },
        ChunkId::LIST if k.body.starts_with(b"adtl") => {
            assert!(o.body.len() <= k.body.len());
        }
        _ => {
            assert_eq!(o, k, "a chunk without a rule is served as kept");
        }
    }
}
