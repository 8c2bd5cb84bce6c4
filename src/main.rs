//! The `zarr-wavfs` command line. Errors are reported here as one line each.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use zarr_wavfs::archive::{Archive, normalise};
use zarr_wavfs::engine::{DEFAULT_CACHE_BYTES, Engine};
use zarr_wavfs::import::{
    Codec, Existing, ImportError, ImportOptions, Imported, Job, Outcome, Progress, import_all, plan,
};
use zarr_wavfs::ops;
use zarr_wavfs::store::{Address, RemoteOptions, StoreOptions};
use zarr_wavfs::wav::SampleFormat;
use zarr_wavfs::wav_file::TimeExpansion;

#[derive(Parser)]
#[command(
    name = "zarr-wavfs",
    version,
    about = "Zarr audio archives as WAV files"
)]
struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

/// Settings of archives in S3-compatible stores and on web servers (the `AWS_*`
/// environment and `~/.aws` are read as by the AWS command line; these win).
#[derive(clap::Args)]
struct StoreArgs {
    /// S3 endpoint of a self-hosted server (MinIO, Ceph, Garage…); AWS_ENDPOINT_URL.
    #[arg(long, global = true, value_name = "URL")]
    endpoint_url: Option<String>,
    /// S3 region; AWS_REGION.
    #[arg(long, global = true)]
    region: Option<String>,
    /// Profile of ~/.aws/credentials and ~/.aws/config; AWS_PROFILE.
    #[arg(long, global = true)]
    profile: Option<String>,
    /// Unsigned requests, for public buckets.
    #[arg(long, global = true)]
    no_sign_request: bool,
    /// Virtual-hosted-style requests (bucket.host/key) instead of path style.
    #[arg(long, global = true)]
    virtual_hosted: bool,
    /// Seconds a request to a remote store may take, retries included, before it fails.
    #[arg(long, global = true, default_value_t = 30.0, value_name = "SECS")]
    timeout: f64,
}

impl StoreArgs {
    fn options(&self) -> Result<StoreOptions> {
        if !(self.timeout > 0.0 && self.timeout.is_finite()) {
            bail!(
                "--timeout {}: expected a positive number of seconds",
                self.timeout
            );
        }
        Ok(StoreOptions {
            timeout: std::time::Duration::from_secs_f64(self.timeout),
            remote: RemoteOptions {
                endpoint: self.endpoint_url.clone(),
                region: self.region.clone(),
                profile: self.profile.clone(),
                anonymous: self.no_sign_request,
                virtual_hosted: self.virtual_hosted,
            },
        })
    }
}

/// How the mount and the HTTP server serve recordings.
#[derive(clap::Args)]
struct Served {
    /// Bound of the decoded-audio cache, e.g. 256MiB or 1G.
    #[arg(long, default_value = "256MiB", value_parser = zarr_wavfs::mount::parse_size)]
    cache_size: usize,
    /// Worker threads serving opens and reads.
    #[arg(long, default_value_t = 16)]
    threads: usize,
    /// Sample format of every served WAV file: s16, s24, s32 or f32 (default: each
    /// recording's own, e.g. s24 for a 24-bit FLAC recording, s16 for Opus).
    #[arg(long, value_parser = parse_format)]
    format: Option<SampleFormat>,
    #[command(flatten)]
    expansion: Expansion,
    /// Read the archive again this often, in seconds, so that recordings imported or
    /// removed meanwhile show (a local archive is also watched, and shows them at
    /// once); 0: never.
    #[arg(long, value_name = "SECS", default_value = "30",
          value_parser = zarr_wavfs::fs::refresh_interval)]
    refresh: std::time::Duration,
}

/// The time-expanded view (mount, serve, extract).
#[derive(clap::Args)]
struct Expansion {
    /// Serve recordings above --time-expansion-above Hz time-expanded by this factor:
    /// the header's rate divided by it, the same samples (names get .TE<N>.wav).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(2..))]
    time_expansion: Option<u32>,
    /// Rate above which --time-expansion applies, in Hz.
    #[arg(long, value_name = "HZ", default_value_t = zarr_wavfs::wav_file::DEFAULT_TIME_EXPANSION_ABOVE)]
    time_expansion_above: u32,
}

impl Expansion {
    fn view(&self) -> Option<TimeExpansion> {
        self.time_expansion.map(|factor| TimeExpansion {
            factor,
            above: self.time_expansion_above,
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Import audio files (directories recursively) into an archive, creating it if needed.
    Import {
        #[arg(value_parser = parse_address)]
        archive: Address,
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Archive folder to put the recordings in.
        #[arg(long, default_value = "")]
        into: String,
        /// How to store the audio: flac (lossless, compressed), pcm (lossless, samples
        /// as a plain Zarr array) or opus (lossy). Default: flac, or pcm for float
        /// input. Ogg Opus inputs are always stored as they are.
        #[arg(long, value_parser = parse_codec)]
        codec: Option<Codec>,
        /// Opus bitrate per channel, e.g. 64k or 96000.
        #[arg(long, default_value = "64k", value_parser = parse_bitrate)]
        bitrate: u32,
        /// Seconds of audio between decoder checkpoints.
        #[arg(long, default_value_t = zarr_wavfs::codec::opus::DEFAULT_CHECKPOINT_INTERVAL_SECS)]
        checkpoint_interval: f64,
        /// Replace recordings that already exist (recordings only: a folder of that
        /// name is never replaced).
        #[arg(long, conflicts_with = "skip_existing")]
        force: bool,
        /// Skip inputs already imported: a recording of the input's name whose source
        /// has the input's size and SHA-256 is left as it is; one whose source differs
        /// is replaced by a new import of the input. Resumes an interrupted import.
        #[arg(long)]
        skip_existing: bool,
        /// Start time (ISO 8601, UTC) for all inputs; default: from AudioMoth-style file names.
        #[arg(long)]
        start_time: Option<String>,
        /// Import what decodes of a damaged MP3, Vorbis, AAC or ALAC input (packets the
        /// decoder rejects, parts of the stream missing), with a warning naming the
        /// loss. Without it such a file is refused.
        #[arg(long)]
        accept_damaged: bool,
    },
    /// List the archive's folders and recordings.
    Ls {
        #[arg(value_parser = parse_address)]
        archive: Address,
        /// Only the paths of the recordings committed after TIME (UTC,
        /// 2026-12-04T10:00:00Z, or seconds since 1970), one per line, oldest first.
        #[arg(long, value_name = "TIME", value_parser = parse_since)]
        since: Option<std::time::SystemTime>,
    },
    /// Show a recording's metadata, index and checkpoint statistics.
    Info {
        #[arg(value_parser = parse_address)]
        archive: Address,
        recording: String,
    },
    /// Write a recording (or part of it) as a WAV file.
    Extract {
        #[arg(value_parser = parse_address)]
        archive: Address,
        recording: String,
        /// Start: seconds (12.5), hh:mm:ss.sss, or frames (48000f).
        #[arg(long)]
        start: Option<String>,
        /// End (exclusive), same forms as --start.
        #[arg(long)]
        end: Option<String>,
        /// Output file, or - for standard output.
        #[arg(short, long)]
        output: PathBuf,
        /// Sample format of the WAV data: s16, s24, s32 or f32 (default: the
        /// recording's own, e.g. s24 for a 24-bit FLAC recording, s16 for Opus).
        #[arg(long, value_parser = parse_format)]
        format: Option<SampleFormat>,
        #[command(flatten)]
        expansion: Expansion,
    },
    /// Remove recordings, each in one step (a reader that has one open reads it to its
    /// end); exit 1 if any could not be removed.
    Rm {
        #[arg(value_parser = parse_address)]
        archive: Address,
        /// Archive-relative paths of the recordings (a trailing .wav is allowed).
        #[arg(required = true)]
        recordings: Vec<String>,
    },
    /// Decode everything and check stream, index and checkpoints; exit 1 if anything is wrong.
    Verify {
        #[arg(value_parser = parse_address)]
        archive: Address,
    },
    /// Serve the archive as a read-only directory of WAV files (FUSE).
    Mount {
        #[arg(value_parser = parse_address)]
        archive: Address,
        mountpoint: PathBuf,
        /// Stay in the foreground (log to stderr) instead of detaching.
        #[arg(short, long)]
        foreground: bool,
        /// Mount options, comma-separated (allow_other, allow_root, noauto_unmount,
        /// fsname=, subtype=, cache_size=, format=, threads=, time_expansion=,
        /// time_expansion_above=, refresh=, log=, noatime, ...).
        #[arg(short = 'o', value_name = "OPT[,OPT...]")]
        options: Vec<String>,
        #[command(flatten)]
        served: Served,
        /// Log file of the daemon (default when detached: syslog).
        #[arg(long)]
        log: Option<PathBuf>,
    },
    /// Serve the archive over HTTP: every recording as NAME.wav (Range requests,
    /// segments as ?start=&end=), folder pages with a player and spectrograms, JSON
    /// listings. Stops cleanly on SIGINT or SIGTERM.
    Serve {
        #[arg(value_parser = parse_address)]
        archive: Address,
        /// Address and port to listen on; port 0 picks a free one. Anything but a
        /// loopback address serves the archive to the network: nothing is password
        /// protected.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        served: Served,
        /// Allow browsers on pages of ORIGIN (or `*`) to read the archive (CORS).
        #[arg(long, value_name = "ORIGIN")]
        cors: Option<String>,
        /// Seconds a client may take to send a request's headers, or leave a response
        /// unread, before its connection is closed.
        #[arg(long, default_value_t = 30.0, value_name = "SECS")]
        client_timeout: f64,
    },
    /// Rewrite the archive's manifest (the list of its folders and recordings that
    /// mounts read in one request) by walking the archive; imports keep it up to date.
    Manifest {
        #[arg(value_parser = parse_address)]
        archive: Address,
    },
    /// Rebuild stored checkpoints with this build's libopus (all recordings, in parallel).
    Index {
        #[arg(value_parser = parse_address)]
        archive: Address,
        /// Recordings to rebuild; default all.
        recordings: Vec<String>,
        #[arg(long, default_value_t = zarr_wavfs::codec::opus::DEFAULT_CHECKPOINT_INTERVAL_SECS)]
        checkpoint_interval: f64,
    },
    /// Print the seconds one libopus decoder takes straight through an Opus recording
    /// (stream in memory; no checkpoints, cache or FUSE): scripts/bench.sh's limit.
    #[command(hide = true)]
    DecodeLimit {
        #[arg(value_parser = parse_address)]
        archive: Address,
        recording: String,
    },
}

fn parse_bitrate(s: &str) -> Result<u32, String> {
    let (num, mult) = match s.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1000.0),
        None => (s, 1.0),
    };
    let v: f64 = num.parse().map_err(|_| format!("bad bitrate \"{s}\""))?;
    let b = (v * mult) as u32;
    if !(6_000..=256_000).contains(&b) {
        return Err(format!("bitrate {b} per channel is outside 6k..256k"));
    }
    Ok(b)
}

fn parse_address(s: &str) -> Result<Address, String> {
    Address::parse(s).map_err(|e| e.to_string())
}

fn parse_codec(s: &str) -> Result<Codec, String> {
    Codec::parse(s).ok_or_else(|| format!("unknown codec \"{s}\" (flac, pcm, opus)"))
}

fn parse_since(s: &str) -> Result<std::time::SystemTime, String> {
    if let Ok(secs) = s.parse::<f64>()
        && secs >= 0.0
        && secs.is_finite()
    {
        return Ok(std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(secs));
    }
    zarr_wavfs::archive::parse_utc(s).ok_or_else(|| {
        format!("{s}: expected a UTC time (2026-12-04T10:00:00Z) or seconds since 1970")
    })
}

fn parse_format(s: &str) -> Result<SampleFormat, String> {
    SampleFormat::parse(s).ok_or_else(|| format!("unknown format \"{s}\" (s16, s24, s32, f32)"))
}

fn main() -> ExitCode {
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Anything but a subcommand followed by two paths is mount(8)'s way of calling us
    // (`mount -t fuse.zarr-wavfs ARCHIVE MOUNTPOINT -o OPTS` runs
    // `zarr-wavfs ARCHIVE MOUNTPOINT -o OPTS`).
    if argv.len() >= 3 {
        let first = argv[1].to_string_lossy();
        let command = <Cli as clap::CommandFactory>::command();
        let known = first == "help" || command.get_subcommands().any(|c| c.get_name() == first);
        if !first.starts_with('-') && !known {
            argv.insert(1, "mount".into());
        }
    }
    let cli = Cli::parse_from(argv);
    if let Err(e) = init_logging(&cli) {
        eprintln!("zarr-wavfs: error: {e:#}");
        return ExitCode::from(2);
    }
    let store = match cli.store.options() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("zarr-wavfs: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(cli.command, &store) {
        Ok(code) => code,
        Err(e) => {
            // Typed errors already include their source's text; print each cause once.
            let mut chain: Vec<String> = Vec::new();
            for c in e.chain().map(|c| c.to_string()) {
                if !chain.last().is_some_and(|l| l.contains(&c)) {
                    chain.push(c);
                }
            }
            eprintln!("zarr-wavfs: error: {}", chain.join(": "));
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr, except for the mount daemon: to its `--log` file, or to syslog
/// when it detaches without one.
fn init_logging(cli: &Cli) -> Result<()> {
    // The mount daemon logs its mount, unmount and errors by default.
    let quiet = if matches!(cli.command, Command::Mount { .. }) {
        "info"
    } else {
        "warn"
    };
    let level = match cli.verbose {
        0 => quiet,
        1 => "info",
        _ => "debug",
    };
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level));
    builder.format_timestamp(None);
    if let Command::Mount {
        foreground,
        options,
        log,
        ..
    } = &cli.command
    {
        // `-o log=FILE` (for fstab) counts as --log.
        let log = log.clone().or_else(|| {
            options
                .iter()
                .flat_map(|o| o.split(','))
                .find_map(|o| o.strip_prefix("log=").map(PathBuf::from))
        });
        builder.format_timestamp_millis();
        if let Some(path) = log {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("log file {}", path.display()))?;
            builder.target(env_logger::Target::Pipe(Box::new(file)));
        } else if !foreground {
            let filter = builder.build().filter();
            zarr_wavfs::syslog::Syslog::init(filter)?;
            return Ok(());
        }
    }
    builder.init();
    Ok(())
}

/// Runs the import with a progress bar on stderr (when it is a terminal): bytes of
/// input worked through, the rate, the time left, files done and hours imported. A
/// line per job names what was done with it.
fn import_with_bar(
    archive: &Archive,
    jobs: &[Job],
    opts: &ImportOptions,
) -> Result<Vec<Result<Imported, ImportError>>> {
    let bar = ProgressBar::new(0);
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec}, {eta} left; {msg} [{elapsed}]",
        )
        .expect("valid template"),
    );
    let progress = Progress::default();
    let tally = std::sync::Mutex::new((0usize, 0.0f64));
    let finished = std::sync::atomic::AtomicBool::new(false);
    let results = std::thread::scope(|s| {
        s.spawn(|| {
            while !finished.load(std::sync::atomic::Ordering::Relaxed) {
                bar.set_length(progress.total());
                bar.set_position(progress.done());
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        });
        let results = import_all(archive, jobs, opts, &progress, &|job, r| {
            let mut tally = tally.lock().expect("not poisoned");
            tally.0 += 1;
            match r {
                Ok(done) => {
                    tally.1 += done.meta.duration_secs() / 3600.0;
                    let what = match done.outcome {
                        Outcome::Imported => "imported",
                        Outcome::Replaced => "replaced",
                        Outcome::Unchanged => "unchanged",
                    };
                    bar.suspend(|| eprintln!("{what} {} -> {}", job.input.display(), job.target));
                }
                // eprintln, not bar.println: the latter prints nothing when stderr is
                // not a terminal, and errors must always reach the user.
                Err(e) => bar.suspend(|| eprintln!("zarr-wavfs: error: {e}")),
            }
            bar.set_message(format!(
                "{}/{} files, {:.2} h of audio",
                tally.0,
                jobs.len(),
                tally.1
            ));
        });
        finished.store(true, std::sync::atomic::Ordering::Relaxed);
        results
    })?;
    bar.finish_and_clear();
    Ok(results)
}

fn run(cmd: Command, store: &StoreOptions) -> Result<ExitCode> {
    match cmd {
        Command::Import {
            archive,
            inputs,
            into,
            bitrate,
            checkpoint_interval,
            force,
            skip_existing,
            start_time,
            codec,
            accept_damaged,
        } => {
            if !checkpoint_interval.is_finite() || checkpoint_interval <= 0.0 {
                bail!("--checkpoint-interval must be positive");
            }
            if let Some(t) = &start_time
                && zarr_wavfs::archive::parse_utc(t).is_none()
            {
                bail!("--start-time \"{t}\" is not a UTC time like 2025-06-01T04:00:00Z");
            }
            let jobs = plan(&inputs, &normalise(&into))?;
            if jobs.is_empty() {
                bail!("no audio files found in the inputs");
            }
            let archive = Archive::create_or_open_at(&archive, store)?;
            let opts = ImportOptions {
                into,
                bitrate_per_channel: bitrate,
                checkpoint_interval_secs: checkpoint_interval,
                existing: if force {
                    Existing::Replace
                } else if skip_existing {
                    Existing::SkipUnchanged
                } else {
                    Existing::Refuse
                },
                start_time,
                codec,
                accept_damaged,
                ..ImportOptions::default()
            };
            let results = import_with_bar(&archive, &jobs, &opts)?;
            let failed = results.iter().filter(|r| r.is_err()).count();
            if failed > 0 {
                eprintln!("zarr-wavfs: {failed} of {} inputs failed", jobs.len());
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ls {
            archive,
            since: Some(since),
        } => {
            let archive = Archive::open_at(&archive, store)?;
            for path in ops::committed_since(&archive, since)? {
                println!("{}", ops::escape_name(&path));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ls {
            archive,
            since: None,
        } => {
            let archive = Archive::open_at(&archive, store)?;
            let (text, broken) = ops::ls(&archive)?;
            print!("{text}");
            Ok(if broken {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Info { archive, recording } => {
            let archive = Archive::open_at(&archive, store)?;
            print!("{}", ops::info(&archive, &recording)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Extract {
            archive,
            recording,
            start,
            end,
            output,
            format,
            expansion,
        } => {
            let archive = Archive::open_at(&archive, store)?;
            let engine = Engine::new(DEFAULT_CACHE_BYTES);
            let rec = engine.open(&archive, &recording)?;
            let rate = rec.meta().original_sample_rate;
            let format = zarr_wavfs::wav_file::served_format(format, rec.meta());
            let factor = TimeExpansion::factor_for(expansion.view(), rec.meta());
            let start = start
                .map(|s| ops::parse_time(&s))
                .transpose()
                .map_err(anyhow::Error::msg)?
                .map_or(0, |t| t.to_frame(rate));
            let end = end
                .map(|s| ops::parse_time(&s))
                .transpose()
                .map_err(anyhow::Error::msg)?
                .map_or(rec.frames(), |t| t.to_frame(rate));
            if start > rec.frames() || end < start {
                bail!(
                    "range {start}..{end} is outside the recording's {} frames",
                    rec.frames()
                );
            }
            if output.as_os_str() == "-" {
                let stdout = std::io::stdout();
                let mut w = std::io::BufWriter::new(stdout.lock());
                ops::extract(&rec, start, end, format, factor, &mut w)?;
            } else {
                // Written under a temporary name so a failed extract leaves no partial file.
                let tmp = output.with_extension("wav.part");
                let file =
                    std::fs::File::create(&tmp).with_context(|| format!("{}", tmp.display()))?;
                let mut w = std::io::BufWriter::new(file);
                let r = ops::extract(&rec, start, end, format, factor, &mut w)
                    .and_then(|_| Ok(w.into_inner()?.sync_all()?));
                if let Err(e) = r {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
                std::fs::rename(&tmp, &output).with_context(|| format!("{}", output.display()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rm {
            archive,
            recordings,
        } => {
            let archive = Archive::open_at(&archive, store)?;
            let mut failed = 0;
            ops::remove(&archive, &recordings, |asked, r| match r {
                Ok(path) => println!("removed {path}"),
                Err(e) => {
                    failed += 1;
                    eprintln!("zarr-wavfs: error: {asked}: {e}");
                }
            })?;
            Ok(if failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Verify { archive } => {
            let archive = Archive::open_at(&archive, store)?;
            let problems = ops::verify(&archive)?;
            let mut out = std::io::stdout().lock();
            let errors = problems.iter().filter(|p| p.error).count();
            for p in &problems {
                writeln!(
                    out,
                    "{}: {}: {}",
                    if p.error { "ERROR" } else { "note" },
                    ops::escape_name(&p.path),
                    ops::escape_name(&p.message)
                )?;
            }
            let total = archive.recordings()?.len();
            writeln!(out, "{total} recordings checked, {errors} errors")?;
            Ok(if errors > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Mount {
            archive,
            mountpoint,
            foreground,
            options,
            served:
                Served {
                    cache_size,
                    threads,
                    format,
                    expansion,
                    refresh,
                },
            log: _,
        } => {
            let args = zarr_wavfs::mount::MountArgs {
                archive,
                store: store.clone(),
                mountpoint,
                foreground,
                options,
                cache_bytes: cache_size,
                threads,
                format,
                time_expansion: expansion.view(),
                refresh,
            };
            zarr_wavfs::mount::mount(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            archive,
            listen,
            served:
                Served {
                    cache_size,
                    threads,
                    format,
                    expansion,
                    refresh,
                },
            cors,
            client_timeout,
        } => {
            if !(client_timeout > 0.0 && client_timeout.is_finite()) {
                bail!("--client-timeout {client_timeout}: expected a positive number of seconds");
            }
            if threads == 0 {
                bail!("--threads must be at least 1");
            }
            zarr_wavfs::engine::fixed_mmap_threshold();
            let archive = Archive::open_at(&archive, store)?;
            let time_expansion = expansion.view();
            let tree = zarr_wavfs::fs::Tree::build(&archive, format, time_expansion)?;
            let fs = zarr_wavfs::fs::FileSystem::new(
                archive,
                tree,
                zarr_wavfs::fs::FsOptions {
                    format,
                    time_expansion,
                    cache_bytes: cache_size,
                    refresh,
                },
            );
            let timeout = std::time::Duration::from_secs_f64(client_timeout);
            let opts = zarr_wavfs::serve::ServeOptions {
                listen,
                threads,
                cors,
                header_timeout: timeout,
                write_timeout: timeout,
            };
            zarr_wavfs::serve::serve(fs, opts, |addr| {
                println!("serving http://{addr}/");
                let _ = std::io::stdout().flush();
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Manifest { archive } => {
            let archive = Archive::open_at(&archive, store)?;
            if !archive.store().is_listable() {
                bail!(
                    "{}: a manifest is written by walking the archive, and a web server \
                     cannot list; write it where the archive can be listed and copy it",
                    archive.address()
                );
            }
            let n = ops::rewrite_manifest(&archive)?;
            println!(
                "{} ({n} recordings)",
                archive.location(zarr_wavfs::archive::manifest::MANIFEST_KEY)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::DecodeLimit { archive, recording } => {
            let archive = Archive::open_at(&archive, store)?;
            let t = ops::decode_limit(&archive, &recording)?;
            println!("{:.4}", t.as_secs_f64());
            Ok(ExitCode::SUCCESS)
        }
        Command::Index {
            archive,
            recordings,
            checkpoint_interval,
        } => {
            if !checkpoint_interval.is_finite() || checkpoint_interval <= 0.0 {
                bail!("--checkpoint-interval must be positive");
            }
            let archive = Archive::open_at(&archive, store)?;
            let results = ops::rebuild_checkpoints(&archive, &recordings, checkpoint_interval)?;
            let mut failed = 0;
            for (path, r) in &results {
                match r {
                    Ok(n) => println!("{path}: {n} checkpoints"),
                    Err(e) => {
                        failed += 1;
                        eprintln!("zarr-wavfs: error: {e}");
                    }
                }
            }
            Ok(if failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
