//! Decoding a run of consecutive frames with libFLAC's stream decoder.
//!
//! libFLAC reads a STREAMINFO block made from the stream's parameters, then the frames'
//! bytes, one frame per `process_single`. Each frame's header is parsed and checked here
//! first (its number against the frames before it, its block size against the samples
//! asked for, its parameters against STREAMINFO), since libFLAC would decode a frame
//! from anywhere; libFLAC checks the CRCs. Any error it reports (a bad CRC, lost sync,
//! unparseable subframes), a frame of other parameters than the header said, or a sample
//! outside the stream's bit depth fails the frame: damaged bytes give errors rather than
//! different audio.

use libflac_sys as ffi;

use super::header::{RawStreamInfo, STREAMINFO_LEN, parse_frame_header, write_streaminfo};
use super::{FlacError, FrameProblem, StreamInfo};

/// Output reserved up front at most (samples): a wrong `samples` must not reserve
/// absurd memory; longer outputs grow as frames decode.
const MAX_RESERVE: usize = 1 << 24;

/// Decodes consecutive frames: `bytes` holds exactly whole frames, the first starting at
/// sample `first_sample`, together `samples` samples per channel. Returns exactly
/// `samples * channels` interleaved samples, or an error naming the failing frame.
pub fn decode_frames(
    info: &StreamInfo,
    bytes: &[u8],
    first_sample: u64,
    samples: u64,
) -> Result<Vec<i32>, FlacError> {
    if !(1..=8).contains(&info.channels) || !(4..=24).contains(&info.bits_per_sample) {
        return Err(FlacError::Unsupported(format!(
            "{} channels of {} bits",
            info.channels, info.bits_per_sample
        )));
    }
    let channels = usize::from(info.channels);
    let end_sample = first_sample.saturating_add(samples);
    let reserve = usize::try_from(samples).map_or(MAX_RESERVE, |s| s.saturating_mul(channels));
    let mut feed = Feed {
        head: stream_head(info),
        bytes,
        read: 0,
        out: Vec::with_capacity(reserve.min(MAX_RESERVE)),
        expect: 0,
        channels: info.channels.into(),
        bits: info.bits_per_sample,
        problem: None,
    };
    if bytes.is_empty() {
        return finish(feed.out, first_sample, first_sample, end_sample);
    }
    let decoder = Decoder::new(&mut feed)?;
    let (mut pos, mut next) = (0usize, first_sample);
    while pos < bytes.len() {
        let err = |problem| FlacError::Decode {
            first_sample: next,
            offset: pos as u64,
            problem,
        };
        let (header, _) = parse_frame_header(&bytes[pos..]).map_err(err)?;
        header.check(info).map_err(err)?;
        let start = header.first_sample(info);
        if start != next {
            return Err(err(FrameProblem::SampleNumber {
                expected: next,
                found: start,
            }));
        }
        let end = next + u64::from(header.block_size);
        if end > end_sample {
            return Err(err(FrameProblem::TooManySamples {
                end,
                limit: end_sample,
            }));
        }
        let len = decoder.frame(header.block_size).map_err(err)?;
        pos += len;
        next = end;
    }
    drop(decoder);
    finish(feed.out, first_sample, next, end_sample)
}

fn finish(out: Vec<i32>, first: u64, next: u64, end: u64) -> Result<Vec<i32>, FlacError> {
    if next != end {
        return Err(FlacError::SampleCount {
            expected: end - first,
            found: next - first,
        });
    }
    Ok(out)
}

/// `fLaC` and a STREAMINFO block (the only one) for `info`; totals, frame sizes and MD5
/// left unknown, so that libFLAC takes the frames for what they are.
fn stream_head(info: &StreamInfo) -> [u8; 8 + STREAMINFO_LEN] {
    let mut head = [0; 8 + STREAMINFO_LEN];
    head[..8].copy_from_slice(&[b'f', b'L', b'a', b'C', 0x80, 0, 0, STREAMINFO_LEN as u8]);
    let raw = RawStreamInfo {
        info: StreamInfo {
            total_samples: 0,
            md5: [0; 16],
            ..info.clone()
        },
        min_frame_size: 0,
        max_frame_size: 0,
    };
    head[8..].copy_from_slice(&write_streaminfo(&raw));
    head
}

/// What libFLAC's callbacks read from and write to.
struct Feed<'a> {
    head: [u8; 8 + STREAMINFO_LEN],
    bytes: &'a [u8],
    /// Bytes of `head` then `bytes` handed to libFLAC so far.
    read: usize,
    out: Vec<i32>,
    /// Block size of the frame being decoded; 0 once it is written.
    expect: u32,
    channels: u32,
    bits: u16,
    problem: Option<FrameProblem>,
}

impl Feed<'_> {
    /// Appends a decoded frame interleaved to `out`, or says why it is wrong.
    fn take(
        &mut self,
        header: &ffi::FLAC__FrameHeader,
        planes: &[&[i32]],
    ) -> Result<(), FrameProblem> {
        let (n, bits) = (self.expect as usize, u32::from(self.bits));
        if header.blocksize != self.expect
            || header.channels != self.channels
            || header.bits_per_sample != bits
        {
            return Err(FrameProblem::Subframe(
                "libFLAC decoded a different frame than the header describes".into(),
            ));
        }
        let (min, max) = (-(1i32 << (bits - 1)), (1i32 << (bits - 1)) - 1);
        for plane in planes {
            if let Some(&bad) = plane[..n].iter().find(|&&s| s < min || s > max) {
                return Err(FrameProblem::SampleRange {
                    value: bad.into(),
                    bits: self.bits,
                });
            }
        }
        let out = &mut self.out;
        out.reserve(n * planes.len());
        match planes {
            [mono] => out.extend_from_slice(&mono[..n]),
            [l, r] => {
                for (&a, &b) in l[..n].iter().zip(&r[..n]) {
                    out.extend_from_slice(&[a, b]);
                }
            }
            _ => {
                for i in 0..n {
                    out.extend(planes.iter().map(|p| p[i]));
                }
            }
        }
        self.expect = 0;
        Ok(())
    }
}

/// A libFLAC stream decoder reading a `Feed`, deleted on drop.
struct Decoder<'f, 'a> {
    raw: *mut ffi::FLAC__StreamDecoder,
    feed: *mut Feed<'a>,
    _feed: std::marker::PhantomData<&'f mut Feed<'a>>,
}

impl<'f, 'a> Decoder<'f, 'a> {
    /// A decoder past the metadata of `feed`.
    fn new(feed: &'f mut Feed<'a>) -> Result<Self, FlacError> {
        let feed: *mut Feed<'a> = feed;
        // SAFETY: FLAC__stream_decoder_new has no preconditions; null means out of memory.
        let raw = unsafe { ffi::FLAC__stream_decoder_new() };
        if raw.is_null() {
            return Err(FlacError::Unsupported(
                "libFLAC could not allocate a decoder".into(),
            ));
        }
        let this = Decoder {
            raw,
            feed,
            _feed: std::marker::PhantomData,
        };
        // SAFETY: `raw` is a new decoder; the callbacks get `feed`, which the borrow
        // `'f` keeps alive and otherwise unused as long as `this`.
        let ok = unsafe {
            ffi::FLAC__stream_decoder_init_stream(
                raw,
                Some(read_callback),
                None,
                Some(tell_callback),
                None,
                None,
                Some(write_callback),
                None,
                Some(error_callback),
                feed.cast(),
            ) == ffi::FLAC__STREAM_DECODER_INIT_STATUS_OK
                && ffi::FLAC__stream_decoder_process_until_end_of_metadata(raw) != 0
        };
        // SAFETY: the decoder is not running: nothing else borrows `feed`.
        if !ok || unsafe { (*feed).problem.is_some() } {
            return Err(FlacError::Unsupported(
                "libFLAC refused the stream's parameters".into(),
            ));
        }
        Ok(this)
    }

    /// Decodes the frame at the current position, of `block_size` samples per channel,
    /// appending it to the output; returns its length in bytes.
    fn frame(&self, block_size: u32) -> Result<usize, FrameProblem> {
        // SAFETY: `feed` is alive (see `new`), and libFLAC is not running.
        let at = unsafe {
            (*self.feed).expect = block_size;
            self.position()
        };
        // SAFETY: the decoder is initialised; its callbacks run only within this call.
        let ok = unsafe { ffi::FLAC__stream_decoder_process_single(self.raw) } != 0;
        // SAFETY: libFLAC is done with `feed` until the next call into it.
        let feed = unsafe { &mut *self.feed };
        if let Some(p) = feed.problem.take() {
            return Err(p);
        }
        if !ok || feed.expect != 0 {
            return Err(FrameProblem::Truncated);
        }
        Ok(self.position() - at)
    }

    /// Where libFLAC is in `bytes`: what it was given less what it has not yet read.
    fn position(&self) -> usize {
        let mut pos = 0u64;
        // SAFETY: the decoder is initialised, and it calls only the tell callback here.
        unsafe { ffi::FLAC__stream_decoder_get_decode_position(self.raw, &mut pos) };
        (pos as usize).saturating_sub(8 + STREAMINFO_LEN)
    }
}

impl Drop for Decoder<'_, '_> {
    fn drop(&mut self) {
        // SAFETY: made by FLAC__stream_decoder_new, deleted only here.
        unsafe { ffi::FLAC__stream_decoder_delete(self.raw) };
    }
}

/// # Safety
/// `client` must be the `Feed` the decoder was initialised with (see `Decoder::new`).
unsafe fn feed<'a, 'b>(client: *mut libc::c_void) -> &'a mut Feed<'b> {
    // SAFETY: as the caller promises.
    unsafe { &mut *client.cast::<Feed<'b>>() }
}

unsafe extern "C" fn read_callback(
    _: *const ffi::FLAC__StreamDecoder,
    buffer: *mut ffi::FLAC__byte,
    bytes: *mut usize,
    client: *mut libc::c_void,
) -> ffi::FLAC__StreamDecoderReadStatus {
    // SAFETY: libFLAC passes back our client data and a buffer of `*bytes` bytes.
    let (feed, want) = unsafe { (feed(client), *bytes) };
    let head = feed.head.len();
    let src = if feed.read < head {
        &feed.head[feed.read..]
    } else {
        &feed.bytes[feed.read - head..]
    };
    let n = src.len().min(want);
    // SAFETY: `buffer` holds `want` ≥ `n` bytes and does not overlap `src`.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), buffer, n);
        *bytes = n;
    }
    feed.read += n;
    if n == 0 {
        ffi::FLAC__STREAM_DECODER_READ_STATUS_END_OF_STREAM
    } else {
        ffi::FLAC__STREAM_DECODER_READ_STATUS_CONTINUE
    }
}

unsafe extern "C" fn tell_callback(
    _: *const ffi::FLAC__StreamDecoder,
    offset: *mut ffi::FLAC__uint64,
    client: *mut libc::c_void,
) -> ffi::FLAC__StreamDecoderTellStatus {
    // SAFETY: libFLAC passes back our client data and a place for the position.
    unsafe { *offset = feed(client).read as u64 };
    ffi::FLAC__STREAM_DECODER_TELL_STATUS_OK
}

unsafe extern "C" fn write_callback(
    _: *const ffi::FLAC__StreamDecoder,
    frame: *const ffi::FLAC__Frame,
    buffer: *const *const ffi::FLAC__int32,
    client: *mut libc::c_void,
) -> ffi::FLAC__StreamDecoderWriteStatus {
    // SAFETY: libFLAC passes back our client data, the decoded frame, and one buffer of
    // `blocksize` samples per channel.
    let (feed, header, planes) = unsafe {
        let header = &(*frame).header;
        let n = header.blocksize as usize;
        let mut planes: [&[i32]; 8] = [&[]; 8];
        let channels = (header.channels as usize).min(8);
        for (c, plane) in planes[..channels].iter_mut().enumerate() {
            *plane = std::slice::from_raw_parts(*buffer.add(c), n);
        }
        (feed(client), header, (planes, channels))
    };
    let (planes, channels) = planes;
    if feed.expect == 0 {
        // A second frame within one `process_single` cannot happen; refuse it anyway.
        feed.problem = Some(FrameProblem::Truncated);
        return ffi::FLAC__STREAM_DECODER_WRITE_STATUS_ABORT;
    }
    match feed.take(header, &planes[..channels]) {
        Ok(()) => ffi::FLAC__STREAM_DECODER_WRITE_STATUS_CONTINUE,
        Err(p) => {
            feed.problem = Some(p);
            ffi::FLAC__STREAM_DECODER_WRITE_STATUS_ABORT
        }
    }
}

unsafe extern "C" fn error_callback(
    _: *const ffi::FLAC__StreamDecoder,
    status: ffi::FLAC__StreamDecoderErrorStatus,
    client: *mut libc::c_void,
) {
    let problem = match status {
        ffi::FLAC__STREAM_DECODER_ERROR_STATUS_FRAME_CRC_MISMATCH => FrameProblem::Crc,
        ffi::FLAC__STREAM_DECODER_ERROR_STATUS_BAD_HEADER => FrameProblem::HeaderCrc,
        ffi::FLAC__STREAM_DECODER_ERROR_STATUS_LOST_SYNC => FrameProblem::NoSync,
        other => FrameProblem::Subframe(format!("libFLAC decoder error {other}")),
    };
    // SAFETY: libFLAC passes back our client data.
    let feed = unsafe { feed(client) };
    feed.problem.get_or_insert(problem);
}
