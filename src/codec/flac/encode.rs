//! Encoding: libFLAC's stream encoder (the `libflac-sys` crate, built from its sources)
//! at compression level 5, with a fixed block size of [`BLOCK_SIZE`].
//!
//! libFLAC writes the whole file: STREAMINFO (rewritten at the end, through the seek
//! callback, with the total samples, frame sizes and the MD5 of the input it was given),
//! a VORBIS_COMMENT block holding only its vendor string, and the frames. Every frame
//! is independently decodable, so [`scan()`](super::scan) indexes the result like any
//! other fixed-blocksize stream.

use std::ffi::CStr;
use std::io::{Cursor, Seek, SeekFrom, Write};

use libflac_sys as ffi;

use super::FlacError;

/// Samples per channel in every frame but the last.
pub const BLOCK_SIZE: u32 = 4096;

/// STREAMINFO counts samples in 36 bits.
const MAX_TOTAL_SAMPLES: u64 = (1 << 36) - 1;

/// The compression level of `flac -5` (the `flac` command's default): LPC up to order
/// 8, adaptive mid-side stereo, Rice partitions up to order 5.
const COMPRESSION_LEVEL: u32 = 5;

/// Accepts what the encoder can write: 1..=8 channels; 8, 12, 16, 20 or 24 bits;
/// 1..=655350 Hz (the most a frame header can state).
pub(crate) fn check_parameters(
    channels: u16,
    bits: u16,
    sample_rate: u32,
) -> Result<(), FlacError> {
    if !(1..=8).contains(&channels) {
        return Err(FlacError::Parameter(format!(
            "{channels} channels (1..=8 allowed)"
        )));
    }
    if ![8, 12, 16, 20, 24].contains(&bits) {
        return Err(FlacError::Parameter(format!(
            "{bits} bits per sample (8, 12, 16, 20 or 24 allowed)"
        )));
    }
    if !(1..=655_350).contains(&sample_rate) {
        return Err(FlacError::Parameter(format!(
            "sample rate {sample_rate} Hz (1..=655350 allowed)"
        )));
    }
    Ok(())
}

/// Where libFLAC's callbacks write: the output (taken by `finish_into`) and the first
/// error writing it.
struct Sink<W> {
    out: Option<W>,
    error: Option<std::io::Error>,
}

impl<W: Write + Seek> Sink<W> {
    /// Runs `op` on the output; false (the error kept) if it fails.
    fn run(&mut self, op: impl FnOnce(&mut W) -> std::io::Result<()>) -> bool {
        let done = match self.out.as_mut() {
            Some(out) => op(out),
            None => Err(std::io::Error::other("the encoder is finished")),
        };
        match done {
            Ok(()) => true,
            Err(e) => {
                self.error.get_or_insert(e);
                false
            }
        }
    }
}

/// The sink behind libFLAC's client data.
///
/// # Safety
/// `client` must be the `Sink<W>` given to `FLAC__stream_encoder_init_stream`, alive and
/// not otherwise borrowed (libFLAC calls back only from within our calls into it).
unsafe fn sink<'a, W>(client: *mut libc::c_void) -> &'a mut Sink<W> {
    // SAFETY: as the caller promises.
    unsafe { &mut *client.cast::<Sink<W>>() }
}

unsafe extern "C" fn write_callback<W: Write + Seek>(
    _: *const ffi::FLAC__StreamEncoder,
    buffer: *const ffi::FLAC__byte,
    bytes: usize,
    _samples: u32,
    _current_frame: u32,
    client: *mut libc::c_void,
) -> ffi::FLAC__StreamEncoderWriteStatus {
    // SAFETY: libFLAC passes back the client data of `to_writer` and a buffer of
    // `bytes` bytes.
    let (sink, buffer) = unsafe { (sink::<W>(client), std::slice::from_raw_parts(buffer, bytes)) };
    if sink.run(|out| out.write_all(buffer)) {
        ffi::FLAC__STREAM_ENCODER_WRITE_STATUS_OK
    } else {
        ffi::FLAC__STREAM_ENCODER_WRITE_STATUS_FATAL_ERROR
    }
}

unsafe extern "C" fn seek_callback<W: Write + Seek>(
    _: *const ffi::FLAC__StreamEncoder,
    offset: ffi::FLAC__uint64,
    client: *mut libc::c_void,
) -> ffi::FLAC__StreamEncoderSeekStatus {
    // SAFETY: libFLAC passes back the client data of `to_writer`.
    let sink = unsafe { sink::<W>(client) };
    if sink.run(|out| out.seek(SeekFrom::Start(offset)).map(drop)) {
        ffi::FLAC__STREAM_ENCODER_SEEK_STATUS_OK
    } else {
        ffi::FLAC__STREAM_ENCODER_SEEK_STATUS_ERROR
    }
}

unsafe extern "C" fn tell_callback<W: Write + Seek>(
    _: *const ffi::FLAC__StreamEncoder,
    offset: *mut ffi::FLAC__uint64,
    client: *mut libc::c_void,
) -> ffi::FLAC__StreamEncoderTellStatus {
    // SAFETY: libFLAC passes back the client data of `to_writer` and a place for the
    // position.
    let sink = unsafe { sink::<W>(client) };
    let mut at = 0;
    if sink.run(|out| out.stream_position().map(|p| at = p)) {
        // SAFETY: as above.
        unsafe { *offset = at };
        ffi::FLAC__STREAM_ENCODER_TELL_STATUS_OK
    } else {
        ffi::FLAC__STREAM_ENCODER_TELL_STATUS_ERROR
    }
}

/// Streaming FLAC encoder: libFLAC at `flac -5`'s settings, fixed blocks of
/// [`BLOCK_SIZE`], STREAMINFO with total samples and MD5. The encoded file goes to `W`
/// as it is made (STREAMINFO is written last, over the first version of it); the default
/// `W` keeps it in memory and [`finish`](Self::finish) returns it.
pub struct FlacEncoder<W: Write + Seek = Cursor<Vec<u8>>> {
    /// Null once finished.
    encoder: *mut ffi::FLAC__StreamEncoder,
    /// libFLAC's client data: boxed, so that its address stays put while the encoder
    /// lives.
    sink: Box<Sink<W>>,
    channels: u16,
    bits: u16,
    /// The samples of a partly pushed frame (fewer than `channels`).
    partial: Vec<i32>,
    /// Interleaved samples accepted so far.
    pushed: u64,
}

// SAFETY: a libFLAC encoder has no ties to the thread that made it; it is used only
// through `&mut self`, and its callbacks touch nothing but the `Sink` it owns.
unsafe impl<W: Write + Seek + Send> Send for FlacEncoder<W> {}

impl FlacEncoder {
    /// 1..=8 channels; 8, 12, 16, 20 or 24 bits; 1..=655350 Hz. Encodes on the
    /// calling thread, into memory.
    pub fn new(channels: u16, bits: u16, sample_rate: u32) -> Result<Self, FlacError> {
        Self::with_threads(channels, bits, sample_rate, 1)
    }

    /// As [`new`](Self::new), but libFLAC encodes on `threads` (1..=64) threads: about
    /// `threads` times as fast where cores are free. The output is byte-identical to
    /// [`new`](Self::new)'s.
    pub fn with_threads(
        channels: u16,
        bits: u16,
        sample_rate: u32,
        threads: usize,
    ) -> Result<Self, FlacError> {
        FlacEncoder::to_writer(
            Cursor::new(Vec::new()),
            channels,
            bits,
            sample_rate,
            threads,
        )
    }

    /// Encodes what is left and returns the whole `.flac` file.
    pub fn finish(self) -> Result<Vec<u8>, FlacError> {
        self.finish_into().map(Cursor::into_inner)
    }
}

impl<W: Write + Seek> FlacEncoder<W> {
    /// An encoder writing the file to `out` (from its current position, which must be
    /// 0: libFLAC seeks back to byte 8 to write STREAMINFO), encoding on `threads`
    /// threads.
    pub fn to_writer(
        out: W,
        channels: u16,
        bits: u16,
        sample_rate: u32,
        threads: usize,
    ) -> Result<Self, FlacError> {
        check_parameters(channels, bits, sample_rate)?;
        if !(1..=64).contains(&threads) {
            return Err(FlacError::Parameter(format!(
                "{threads} threads (1..=64 allowed)"
            )));
        }
        // SAFETY: FLAC__stream_encoder_new has no preconditions; null means out of memory.
        let encoder = unsafe { ffi::FLAC__stream_encoder_new() };
        if encoder.is_null() {
            return Err(FlacError::Encoder(
                "libFLAC could not allocate an encoder".into(),
            ));
        }
        let mut this = FlacEncoder {
            encoder,
            sink: Box::new(Sink {
                out: Some(out),
                error: None,
            }),
            channels,
            bits,
            partial: Vec::new(),
            pushed: 0,
        };
        let e = this.encoder;
        // SAFETY: `e` is a new, uninitialised encoder (the setters' precondition); the
        // callbacks get `sink` as client data, which lives in its box as long as `this`
        // and so as long as the encoder (`Drop` deletes the encoder first).
        let status = unsafe {
            // Set before the block size: the level sets one too. Not the streamable
            // subset: it refuses rates above 65,535 Hz that are not a multiple of 10.
            let ok = ffi::FLAC__stream_encoder_set_channels(e, channels.into()) != 0
                && ffi::FLAC__stream_encoder_set_bits_per_sample(e, bits.into()) != 0
                && ffi::FLAC__stream_encoder_set_sample_rate(e, sample_rate) != 0
                && ffi::FLAC__stream_encoder_set_compression_level(e, COMPRESSION_LEVEL) != 0
                && ffi::FLAC__stream_encoder_set_blocksize(e, BLOCK_SIZE) != 0
                && ffi::FLAC__stream_encoder_set_streamable_subset(e, 0) != 0;
            if !ok {
                return Err(FlacError::Encoder("libFLAC refused a setting".into()));
            }
            // Without libFLAC's multithreading (not compiled in) one thread does it all.
            let threads = u32::try_from(threads).unwrap_or(1);
            if threads > 1
                && ffi::FLAC__stream_encoder_set_num_threads(e, threads)
                    != ffi::FLAC__STREAM_ENCODER_SET_NUM_THREADS_OK
            {
                log::debug!("libFLAC runs on one thread (multithreading not available)");
            }
            let client: *mut Sink<W> = &mut *this.sink;
            ffi::FLAC__stream_encoder_init_stream(
                e,
                Some(write_callback::<W>),
                Some(seek_callback::<W>),
                Some(tell_callback::<W>),
                None,
                client.cast(),
            )
        };
        if status != ffi::FLAC__STREAM_ENCODER_INIT_STATUS_OK {
            return Err(this.error(&format!("libFLAC could not start (init status {status})")));
        }
        Ok(this)
    }

    /// Adds interleaved samples, in any amounts (frames may be split across calls).
    /// An out-of-range sample rejects the whole call and changes nothing. After an
    /// encoder error (an internal failure or a write error, not bad input) the output is
    /// incomplete.
    pub fn push(&mut self, interleaved: &[i32]) -> Result<(), FlacError> {
        let bits = self.bits;
        let (min, max) = (-(1i32 << (bits - 1)), (1i32 << (bits - 1)) - 1);
        if let Some(i) = interleaved.iter().position(|&s| s < min || s > max) {
            return Err(FlacError::InputRange {
                index: self.pushed + i as u64,
                value: interleaved[i],
                bits,
            });
        }
        let channels = usize::from(self.channels);
        let pushed = self.pushed + interleaved.len() as u64;
        if pushed / channels as u64 > MAX_TOTAL_SAMPLES {
            return Err(FlacError::TooLong);
        }
        self.pushed = pushed;
        let mut rest = interleaved;
        if !self.partial.is_empty() {
            let take = (channels - self.partial.len()).min(rest.len());
            self.partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.partial.len() == channels {
                let frame = std::mem::take(&mut self.partial);
                self.process(&frame)?;
            }
        }
        let whole = rest.len() - rest.len() % channels;
        self.process(&rest[..whole])?;
        self.partial.extend_from_slice(&rest[whole..]);
        Ok(())
    }

    /// Hands whole frames of samples to libFLAC.
    fn process(&mut self, interleaved: &[i32]) -> Result<(), FlacError> {
        // libFLAC takes at most u32::MAX frames per call.
        for chunk in interleaved.chunks(usize::from(self.channels) << 24) {
            let n = (chunk.len() / usize::from(self.channels)) as u32;
            // SAFETY: the encoder is initialised (it is null only after `finish_into`,
            // which consumes `self`), and `chunk` holds `n` whole frames of in-range
            // samples.
            let ok = unsafe {
                ffi::FLAC__stream_encoder_process_interleaved(self.encoder, chunk.as_ptr(), n)
            };
            if ok == 0 {
                return Err(self.error("libFLAC failed to encode"));
            }
        }
        Ok(())
    }

    /// The error after a failed libFLAC call: the write error that caused it, or the
    /// encoder's state.
    fn error(&mut self, what: &str) -> FlacError {
        if let Some(e) = self.sink.error.take() {
            return FlacError::Encoder(format!("writing the FLAC file: {e}"));
        }
        // SAFETY: the encoder is not null here (see `process`), and libFLAC's state
        // strings are static, NUL-terminated C strings.
        let state = unsafe {
            CStr::from_ptr(ffi::FLAC__stream_encoder_get_resolved_state_string(
                self.encoder,
            ))
        };
        FlacError::Encoder(format!("{what}: {}", state.to_string_lossy()))
    }

    /// Encodes what is left, has STREAMINFO written, and returns the writer (positioned
    /// at the end of the file).
    pub fn finish_into(mut self) -> Result<W, FlacError> {
        let channels = self.channels;
        if !self.partial.is_empty() {
            return Err(FlacError::PartialFrame {
                samples: self.pushed,
                channels,
            });
        }
        if self.pushed == 0 {
            return Err(FlacError::NoFrames);
        }
        // SAFETY: the encoder is initialised; finishing writes the last frames and
        // STREAMINFO through the callbacks, whose sink is still alive.
        let ok = unsafe { ffi::FLAC__stream_encoder_finish(self.encoder) };
        if ok == 0 {
            return Err(self.error("libFLAC failed to finish the stream"));
        }
        if let Some(e) = self.sink.error.take() {
            return Err(FlacError::Encoder(format!("writing the FLAC file: {e}")));
        }
        // SAFETY: the encoder is finished and deleted once; null marks it for `Drop`.
        unsafe { ffi::FLAC__stream_encoder_delete(self.encoder) };
        self.encoder = std::ptr::null_mut();
        let mut out = self.sink.out.take().expect("taken only here");
        let written = out.seek(SeekFrom::End(0)).and_then(|_| out.flush());
        written.map_err(|e| FlacError::Encoder(format!("writing the FLAC file: {e}")))?;
        Ok(out)
    }
}

impl<W: Write + Seek> Drop for FlacEncoder<W> {
    fn drop(&mut self) {
        if !self.encoder.is_null() {
            // SAFETY: the encoder was made by FLAC__stream_encoder_new and not yet
            // deleted; deleting an unfinished one may still write to the sink, which is
            // dropped only after this.
            unsafe { ffi::FLAC__stream_encoder_delete(self.encoder) };
        }
    }
}
