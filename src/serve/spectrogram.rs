//! Spectrogram PNG of a segment of a recording, rendered incrementally.
//!
//! Samples are mixed to mono, cut into Hann-windowed FFT frames and the power of the
//! frames whose centre falls into a pixel column is max-pooled into that column, so
//! memory is `width × height` floats whatever the segment length. Power is shown in dB
//! relative to full scale over [`DYNAMIC_RANGE_DB`], with the viridis colormap, under a
//! linear frequency axis 0 … rate/2 and a time axis `start_secs` … `start_secs + frames/rate`.

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// Longest segment accepted: 10 minutes at 384 kHz. The work per image grows with the
/// number of frames (mixing, and about 2·frames/FFT size FFTs), so the server bounds
/// the CPU one request can take by refusing longer segments; at this length rendering
/// alone takes about 3 s of one core in an optimised build, decoding comes on top.
pub const MAX_FRAMES: u64 = 10 * 60 * 384_000;
/// Largest plot area width in px; with [`MAX_HEIGHT`] it bounds the memory of a request.
pub const MAX_WIDTH: u32 = 4096;
/// Largest plot area height in px.
pub const MAX_HEIGHT: u32 = 2048;
/// dB below full scale shown as the darkest colour.
pub const DYNAMIC_RANGE_DB: f32 = 100.0;

// Space around the plot area, in px: the left and bottom hold the axes, within a margin.
const LEFT: u32 = 72;
const RIGHT: u32 = 24;
const TOP: u32 = 12;
const BOTTOM: u32 = 54;
const MARGIN: u32 = 6;
const FONT_NAME: &str = "zarr-wavfs-sans";

/// Settings of one image.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Plot area width in px (default 1000).
    pub width: u32,
    /// Plot area height in px (default 300).
    pub height: u32,
    /// Sample rate of the recording, Hz.
    pub rate: u32,
    /// Channels interleaved in the samples; they are mixed to mono.
    pub channels: u16,
    /// Time of the first sample, for the time axis labels.
    pub start_secs: f64,
    /// Number of frames in the segment.
    pub frames: u64,
}

/// Why an image cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum SpectrogramError {
    #[error("plot area {width}×{height} px is not within 1…{MAX_WIDTH} × 1…{MAX_HEIGHT}")]
    BadSize { width: u32, height: u32 },
    #[error("sample rate and channel count must be non-zero (got {rate} Hz, {channels} channels)")]
    BadFormat { rate: u32, channels: u16 },
    #[error("start time {0} s is not finite")]
    BadStart(f64),
    #[error("the segment is empty")]
    Empty,
    #[error("segment of {frames} frames is longer than the {MAX_FRAMES} allowed")]
    TooManyFrames { frames: u64 },
    #[error("expected {expected} frames, received {received}")]
    FrameCount { expected: u64, received: u64 },
    #[error("input ends in a partial frame of {samples} samples")]
    PartialFrame { samples: usize },
    #[error("drawing failed: {0}")]
    Draw(String),
    #[error("PNG encoding failed: {0}")]
    Encode(#[from] png::EncodingError),
}

/// Renders incrementally: feed interleaved f32 samples (±1.0 full scale) with
/// [`push`](Renderer::push) in chunks of any size, in order, then [`finish`](Renderer::finish).
pub struct Renderer {
    spec: Spec,
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    frame: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// Scales |X|² so that a full-scale sine peaks at 1 (0 dBFS).
    power_scale: f32,
    /// Inclusive bin range shown in each pixel row, bottom row first.
    row_bins: Vec<(usize, usize)>,
    hop: u64,
    /// Mono samples from `next_centre - fft_len/2` on (negative indices are silence).
    pending: Vec<f32>,
    next_centre: u64,
    /// Max-pooled power, column-major: `columns[col * height + row]`.
    columns: Vec<f32>,
    received: u64,
    /// Samples of a frame split across calls to `push`.
    partial: Vec<f32>,
}

impl Renderer {
    pub fn new(spec: Spec) -> Result<Renderer, SpectrogramError> {
        if !(1..=MAX_WIDTH).contains(&spec.width) || !(1..=MAX_HEIGHT).contains(&spec.height) {
            return Err(SpectrogramError::BadSize {
                width: spec.width,
                height: spec.height,
            });
        }
        if spec.rate == 0 || spec.channels == 0 {
            return Err(SpectrogramError::BadFormat {
                rate: spec.rate,
                channels: spec.channels,
            });
        }
        if !spec.start_secs.is_finite() {
            return Err(SpectrogramError::BadStart(spec.start_secs));
        }
        if spec.frames == 0 {
            return Err(SpectrogramError::Empty);
        }
        if spec.frames > MAX_FRAMES {
            return Err(SpectrogramError::TooManyFrames {
                frames: spec.frames,
            });
        }
        // About 10 ms per frame: resolves both the harmonics of speech and bird song and
        // the few-ms sweeps of bat calls.
        let fft_len = ((spec.rate / 100) as usize)
            .next_power_of_two()
            .clamp(256, 8192);
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(fft_len);
        let window: Vec<f32> = (0..fft_len)
            .map(|n| {
                let phase = std::f32::consts::TAU * n as f32 / fft_len as f32;
                0.5 - 0.5 * phase.cos()
            })
            .collect();
        let gain = window.iter().sum::<f32>() / 2.0;
        let half = fft_len / 2;
        let height = spec.height as usize;
        let row_bins = (0..height)
            .map(|row| {
                let lo = (row * half).div_ceil(height);
                let hi = if row + 1 == height {
                    half
                } else {
                    ((row + 1) * half).div_ceil(height) - 1
                };
                if lo <= hi {
                    (lo, hi)
                } else {
                    // More rows than bins: show the bin nearest the row's centre.
                    let b = (((2 * row + 1) * half) / (2 * height)).min(half);
                    (b, b)
                }
            })
            .collect();
        // At most half-overlapping frames, but at least one frame centre per column.
        let hop = (spec.frames / u64::from(spec.width)).clamp(1, half as u64);
        Ok(Renderer {
            frame: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            window,
            power_scale: 1.0 / (gain * gain),
            row_bins,
            hop,
            pending: vec![0.0; half],
            next_centre: 0,
            columns: vec![0.0; spec.width as usize * height],
            received: 0,
            partial: Vec::with_capacity(usize::from(spec.channels)),
            spec,
        })
    }

    /// Feeds interleaved samples; frames past `Spec::frames` are counted but ignored.
    pub fn push(&mut self, mut interleaved: &[f32]) {
        let channels = usize::from(self.spec.channels);
        if !self.partial.is_empty() {
            let take = (channels - self.partial.len()).min(interleaved.len());
            self.partial.extend_from_slice(&interleaved[..take]);
            interleaved = &interleaved[take..];
            if self.partial.len() < channels {
                return;
            }
            let frame = std::mem::take(&mut self.partial);
            self.push_frames(&frame);
            self.partial = frame;
            self.partial.clear();
        }
        let whole = interleaved.len() / channels * channels;
        self.push_frames(&interleaved[..whole]);
        self.partial.extend_from_slice(&interleaved[whole..]);
    }

    /// Mixes whole frames to mono and transforms every FFT frame they complete.
    fn push_frames(&mut self, interleaved: &[f32]) {
        let channels = usize::from(self.spec.channels);
        let count = (interleaved.len() / channels) as u64;
        let wanted = self.spec.frames.saturating_sub(self.received).min(count);
        self.received += count;
        let mut rest = &interleaved[..wanted as usize * channels];
        let scale = 1.0 / f32::from(self.spec.channels);
        let fft_len = self.window.len();
        while !rest.is_empty() && self.next_centre < self.spec.frames {
            // `pending` never exceeds one FFT frame.
            let take = (fft_len - self.pending.len()).min(rest.len() / channels);
            let (now, later) = rest.split_at(take * channels);
            self.pending.extend(now.chunks_exact(channels).map(|frame| {
                let mono = frame.iter().fold(0.0, |sum, &s| sum + s) * scale;
                if mono.is_finite() { mono } else { 0.0 }
            }));
            rest = later;
            while self.pending.len() >= fft_len && self.next_centre < self.spec.frames {
                self.process_frame();
            }
        }
    }

    /// Pads the end of the segment with silence and returns the PNG file bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, SpectrogramError> {
        if !self.partial.is_empty() {
            return Err(SpectrogramError::PartialFrame {
                samples: self.partial.len(),
            });
        }
        if self.received != self.spec.frames {
            return Err(SpectrogramError::FrameCount {
                expected: self.spec.frames,
                received: self.received,
            });
        }
        let fft_len = self.window.len();
        while self.next_centre < self.spec.frames {
            if self.pending.len() < fft_len {
                self.pending.resize(fft_len, 0.0);
            }
            self.process_frame();
        }
        let (rgb, width, height) = self.draw()?;
        let mut png_bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut png_bytes, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&rgb)?;
        writer.finish()?;
        Ok(png_bytes)
    }

    /// Transforms the frame centred on `next_centre` and pools it into its column(s).
    fn process_frame(&mut self) {
        for ((out, &s), &w) in self.frame.iter_mut().zip(&self.pending).zip(&self.window) {
            *out = s * w;
        }
        self.fft
            .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
            .expect("buffers are made by the plan");
        let width = u64::from(self.spec.width);
        let column_of = |sample: u64| (sample * width / self.spec.frames).min(width);
        let first = column_of(self.next_centre).min(width - 1);
        // Several columns per frame only when the segment has fewer frames than columns.
        let end = column_of(self.next_centre + self.hop).max(first + 1);
        let height = self.spec.height as usize;
        for (row, &(lo, hi)) in self.row_bins.iter().enumerate() {
            let power = self.spectrum[lo..=hi]
                .iter()
                .map(|c| c.norm_sqr())
                .fold(0.0f32, f32::max)
                * self.power_scale;
            for col in first as usize..end as usize {
                // Max rather than mean, so that calls of a few ms stay visible in columns
                // spanning many frames.
                let cell = &mut self.columns[col * height + row];
                *cell = cell.max(power);
            }
        }
        self.next_centre += self.hop;
        self.pending.drain(..self.hop as usize);
    }

    /// Draws axes and heatmap into an RGB buffer; returns it with its dimensions.
    fn draw(&self) -> Result<(Vec<u8>, u32, u32), SpectrogramError> {
        let draw_err = |e: &dyn std::fmt::Display| SpectrogramError::Draw(e.to_string());
        register_font().map_err(|e| draw_err(&e))?;
        let Spec {
            width,
            height,
            rate,
            start_secs,
            frames,
            ..
        } = self.spec;
        let (total_w, total_h) = (width + LEFT + RIGHT, height + TOP + BOTTOM);
        let mut rgb = vec![0u8; total_w as usize * total_h as usize * 3];
        let end_secs = start_secs + frames as f64 / f64::from(rate);
        let top_khz = f64::from(rate) / 2000.0;
        let x_labels = (width / 100).max(2) as usize;
        let y_labels = (height / 40).max(2) as usize;
        let x_decimals = decimals(start_secs..end_secs, x_labels);
        let y_decimals = decimals(0.0..top_khz, y_labels);
        let (plot_x, plot_y) = {
            let root = BitMapBackend::with_buffer(&mut rgb, (total_w, total_h)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| draw_err(&e))?;
            let mut chart = ChartBuilder::on(&root)
                .margin_top(TOP)
                .margin_right(RIGHT)
                .margin_left(MARGIN)
                .margin_bottom(MARGIN)
                .x_label_area_size(BOTTOM - MARGIN)
                .y_label_area_size(LEFT - MARGIN)
                .build_cartesian_2d(start_secs..end_secs, 0.0..top_khz)
                .map_err(|e| draw_err(&e))?;
            let label = (FONT_NAME, 15).into_font().color(&BLACK);
            chart
                .configure_mesh()
                .disable_mesh()
                .x_labels(x_labels)
                .y_labels(y_labels)
                .x_label_formatter(&|t| format!("{t:.x_decimals$}"))
                .y_label_formatter(&|f| format!("{f:.y_decimals$}"))
                .label_style(label.clone())
                .axis_desc_style(label)
                .x_desc("time (s)")
                .y_desc("frequency (kHz)")
                .draw()
                .map_err(|e| draw_err(&e))?;
            let area = chart.plotting_area();
            if area.dim_in_pixel() != (width, height) {
                return Err(SpectrogramError::Draw(format!(
                    "plot area laid out as {:?}",
                    area.dim_in_pixel()
                )));
            }
            root.present().map_err(|e| draw_err(&e))?;
            area.get_base_pixel()
        };
        let lut = colour_table();
        let floor_db = -DYNAMIC_RANGE_DB;
        let h = height as usize;
        for (col, powers) in self.columns.chunks_exact(h).enumerate() {
            for (row, &power) in powers.iter().enumerate() {
                let db = 10.0 * power.max(1e-30).log10();
                let t = ((db - floor_db) / DYNAMIC_RANGE_DB).clamp(0.0, 1.0);
                let colour = lut[(t * 255.0).round() as usize];
                let x = plot_x as usize + col;
                let y = plot_y as usize + h - 1 - row;
                let at = (y * total_w as usize + x) * 3;
                rgb[at..at + 3].copy_from_slice(&colour);
            }
        }
        Ok((rgb, total_w, total_h))
    }
}

/// Decimal places needed by the tick labels plotters puts on `range`.
fn decimals(range: Range<f64>, labels: usize) -> usize {
    let keys = RangedCoordf64::from(range).key_points(labels);
    let step = match keys.as_slice() {
        [a, b, ..] => b - a,
        _ => return 0,
    };
    (0..9)
        .find(|&d| {
            let scaled = step * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() < 1e-6 * scaled
        })
        .unwrap_or(9)
}

fn colour_table() -> [[u8; 3]; 256] {
    std::array::from_fn(|i| {
        let c = ViridisRGB::get_color(i as f32 / 255.0);
        [c.0, c.1, c.2]
    })
}

/// Registers the embedded Noto Sans once per process, so no font file is needed at run time.
fn register_font() -> Result<(), &'static str> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT_NAME, FontStyle::Normal, ttf_noto_sans::REGULAR).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err("embedded font rejected")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::f64::consts::TAU;

    fn spec(width: u32, height: u32, rate: u32, channels: u16, frames: u64) -> Spec {
        Spec {
            width,
            height,
            rate,
            channels,
            start_secs: 0.0,
            frames,
        }
    }

    fn render(spec: &Spec, interleaved: &[f32], chunk_frames: usize) -> Vec<u8> {
        let mut renderer = Renderer::new(spec.clone()).unwrap();
        for chunk in interleaved.chunks(chunk_frames * usize::from(spec.channels)) {
            renderer.push(chunk);
        }
        renderer.finish().unwrap()
    }

    fn tone(rate: u32, frames: u64, freq: f64, amplitude: f64) -> Vec<f32> {
        (0..frames)
            .map(|n| (amplitude * (TAU * freq * n as f64 / f64::from(rate)).sin()) as f32)
            .collect()
    }

    /// Colour table index of each plot area pixel, as `levels[col][y]` with y counted
    /// from the top of the plot area.
    fn levels(png_bytes: &[u8], spec: &Spec) -> Vec<Vec<u8>> {
        let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes))
            .read_info()
            .unwrap();
        let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut rgb).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(
            (info.width, info.height),
            (spec.width + LEFT + RIGHT, spec.height + TOP + BOTTOM)
        );
        let index: HashMap<[u8; 3], u8> = colour_table()
            .iter()
            .enumerate()
            .rev()
            .map(|(i, &c)| (c, i as u8))
            .collect();
        (0..spec.width)
            .map(|col| {
                (0..spec.height)
                    .map(|y| {
                        let at = (((TOP + y) * info.width + LEFT + col) * 3) as usize;
                        let c = [rgb[at], rgb[at + 1], rgb[at + 2]];
                        *index.get(&c).expect("plot pixel is a colour table entry")
                    })
                    .collect()
            })
            .collect()
    }

    /// y (from the top of the plot area) of the brightest pixel of each column.
    fn peaks(levels: &[Vec<u8>]) -> Vec<u32> {
        levels
            .iter()
            .map(|col| {
                let max = *col.iter().max().unwrap();
                col.iter().position(|&l| l == max).unwrap() as u32
            })
            .collect()
    }

    /// y (from the top of the plot area) of the row showing `freq`.
    fn row_y(spec: &Spec, freq: f64) -> u32 {
        let row = (freq / (f64::from(spec.rate) / 2.0) * f64::from(spec.height)) as u32;
        spec.height - 1 - row
    }

    fn assert_near(got: u32, want: u32, tolerance: u32, what: &str) {
        assert!(
            got.abs_diff(want) <= tolerance,
            "{what}: y {got}, expected {want}"
        );
    }

    #[test]
    fn tone_is_brightest_at_its_row() {
        let s = spec(200, 300, 48_000, 1, 48_000);
        let png = render(&s, &tone(s.rate, s.frames, 6_000.0, 0.5), 4096);
        for (col, y) in peaks(&levels(&png, &s)).into_iter().enumerate() {
            assert_near(y, row_y(&s, 6_000.0), 2, &format!("column {col}"));
        }
    }

    #[test]
    fn chirp_rises() {
        let s = spec(100, 300, 48_000, 1, 96_000);
        let (f0, f1, secs) = (1_000.0, 20_000.0, 2.0);
        let samples: Vec<f32> = (0..s.frames)
            .map(|n| {
                let t = n as f64 / f64::from(s.rate);
                (0.5 * (TAU * (f0 * t + (f1 - f0) * t * t / (2.0 * secs))).sin()) as f32
            })
            .collect();
        let ys = peaks(&levels(&render(&s, &samples, 4096), &s));
        for (col, &y) in ys.iter().enumerate() {
            let t = (col as f64 + 0.5) / f64::from(s.width) * secs;
            assert_near(
                y,
                row_y(&s, f0 + (f1 - f0) * t / secs),
                3,
                &format!("column {col}"),
            );
        }
        assert!(ys.windows(2).all(|w| w[1] <= w[0] + 1), "{ys:?}");
    }

    #[test]
    fn silence_is_darkest() {
        let s = spec(50, 40, 8_000, 1, 8_000);
        let png = render(&s, &vec![0.0; s.frames as usize], 4096);
        assert!(levels(&png, &s).iter().flatten().all(|&l| l == 0));
    }

    #[test]
    fn one_pixel_plot_renders() {
        let s = spec(1, 1, 44_100, 1, 44_100);
        let png = render(&s, &tone(s.rate, s.frames, 1_000.0, 0.5), 4096);
        assert_eq!(levels(&png, &s).len(), 1);
    }

    #[test]
    fn non_finite_samples_are_silence() {
        let s = spec(20, 20, 8_000, 1, 1_000);
        let png = render(&s, &[f32::NAN, f32::INFINITY].repeat(500), 7);
        assert!(levels(&png, &s).iter().flatten().all(|&l| l == 0));
    }

    #[test]
    fn chunking_does_not_change_the_image() {
        let s = spec(300, 120, 22_050, 2, 30_000);
        let mut noise = 0x2545_f491_4f6c_dd1du64;
        let samples: Vec<f32> = tone(s.rate, s.frames * 2, 3_000.0, 0.3)
            .into_iter()
            .map(|x| {
                noise ^= noise << 13;
                noise ^= noise >> 7;
                noise ^= noise << 17;
                x + (noise >> 40) as f32 / (1u64 << 24) as f32 * 0.01
            })
            .collect();
        let whole = render(&s, &samples, 4096);
        for chunk_frames in [1, 7] {
            assert!(
                render(&s, &samples, chunk_frames) == whole,
                "{chunk_frames} frames"
            );
        }
        // Chunks that split frames.
        let mut renderer = Renderer::new(s.clone()).unwrap();
        for chunk in samples.chunks(5) {
            renderer.push(chunk);
        }
        assert!(renderer.finish().unwrap() == whole);
    }

    #[test]
    fn stereo_is_mixed() {
        let s = spec(100, 300, 48_000, 2, 24_000);
        let left = tone(s.rate, s.frames, 3_000.0, 0.5);
        let right = tone(s.rate, s.frames, 15_000.0, 0.5);
        let interleaved: Vec<f32> = left
            .iter()
            .zip(&right)
            .flat_map(|(&l, &r)| [l, r])
            .collect();
        let levels = levels(&render(&s, &interleaved, 4096), &s);
        for (col, column) in levels.iter().enumerate() {
            for freq in [3_000.0, 15_000.0] {
                let y = row_y(&s, freq) as usize;
                let near = column[y - 2..=y + 2].iter().max().unwrap();
                // Each tone is 0.25 of full scale in the mix: about −12 dBFS.
                assert!(*near > 200, "column {col}, {freq} Hz: level {near}");
            }
        }
    }

    #[test]
    fn short_segment_fills_every_column() {
        let s = spec(300, 100, 48_000, 1, 100);
        let levels = levels(&render(&s, &tone(s.rate, s.frames, 12_000.0, 0.5), 1), &s);
        assert!(levels.iter().all(|col| col.iter().any(|&l| l > 0)));
    }

    #[test]
    fn bat_rate_works() {
        let s = spec(200, 300, 384_000, 1, 192_000);
        let png = render(&s, &tone(s.rate, s.frames, 50_000.0, 0.5), 4096);
        for (col, y) in peaks(&levels(&png, &s)).into_iter().enumerate() {
            assert_near(y, row_y(&s, 50_000.0), 2, &format!("column {col}"));
        }
    }

    #[test]
    fn bad_specs_are_typed_errors() {
        let too_long = spec(1000, 300, 384_000, 1, MAX_FRAMES + 1);
        assert!(matches!(
            Renderer::new(too_long),
            Err(SpectrogramError::TooManyFrames { .. })
        ));
        for (w, h) in [(0, 300), (1000, 0), (MAX_WIDTH + 1, 300)] {
            assert!(matches!(
                Renderer::new(spec(w, h, 48_000, 1, 100)),
                Err(SpectrogramError::BadSize { .. })
            ));
        }
        assert!(Renderer::new(spec(1000, 300, 384_000, 1, MAX_FRAMES)).is_ok());
        assert!(matches!(
            Renderer::new(spec(10, 10, 0, 1, 100)),
            Err(SpectrogramError::BadFormat { .. })
        ));
        assert!(matches!(
            Renderer::new(spec(10, 10, 48_000, 1, 0)),
            Err(SpectrogramError::Empty)
        ));
    }

    #[test]
    fn wrong_sample_counts_are_typed_errors() {
        let mut short = Renderer::new(spec(10, 10, 8_000, 2, 100)).unwrap();
        short.push(&[0.0; 198]);
        assert!(matches!(
            short.finish(),
            Err(SpectrogramError::FrameCount {
                expected: 100,
                received: 99
            })
        ));
        let mut partial = Renderer::new(spec(10, 10, 8_000, 2, 100)).unwrap();
        partial.push(&[0.0; 201]);
        assert!(matches!(
            partial.finish(),
            Err(SpectrogramError::PartialFrame { samples: 1 })
        ));
    }
}
