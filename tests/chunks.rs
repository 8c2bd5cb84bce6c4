//! Kept chunks (issue 17): a WAV's metadata chunks, written by real tools (ffmpeg's
//! `bext` and `LIST`/`INFO` with an AudioMoth comment, the `guano` Python package's
//! `guan`) and by hand (`iXML`, `cue `, `LIST`/`adtl`), come back byte for byte from
//! `extract` and the mount, the range rules move cue points, and `info` decodes them; the
//! tags of FLAC, MP3, Ogg Vorbis and M4A inputs come back as `LIST`/`INFO`; and the
//! time-expanded view is the same file through extract, serve and the mount.

mod common;

use std::path::Path;
use std::process::Command;

use common::mount::{Mount, fuse_available};
use common::{python_has, run, stderr, stdout};

const RATE: u32 = 48_000;
const MOTH: &str = "Recorded at 20:26:15 03/09/2024 (UTC+1) by AudioMoth 24E144055E08003 at medium gain while battery was 4.2V and temperature was 21.3C.";

type Chunks = Vec<([u8; 4], Vec<u8>)>;

/// The chunks of a RIFF file after `RIFF size WAVE`, bodies without pad bytes.
fn chunks_of(b: &[u8]) -> Chunks {
    assert_eq!(&b[..4], b"RIFF");
    let mut out = Vec::new();
    let mut at = 12;
    while at + 8 <= b.len() {
        let id: [u8; 4] = b[at..at + 4].try_into().unwrap();
        let n = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
        let end = (at + 8 + n).min(b.len());
        out.push((id, b[at + 8..end].to_vec()));
        at = end + (n & 1);
    }
    out
}

fn riff(chunks: &Chunks) -> Vec<u8> {
    let mut body = b"WAVE".to_vec();
    for (id, b) in chunks {
        body.extend_from_slice(id);
        body.extend_from_slice(&(b.len() as u32).to_le_bytes());
        body.extend_from_slice(b);
        if b.len() % 2 == 1 {
            body.push(0);
        }
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// ffmpeg, quiet and overwriting its output.
fn ffmpeg() -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-loglevel", "error", "-y"]);
    c
}

fn sh(cmd: &mut Command) {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn cue(points: &[(u32, u32)]) -> Vec<u8> {
    let mut b = (points.len() as u32).to_le_bytes().to_vec();
    for &(id, at) in points {
        b.extend_from_slice(&id.to_le_bytes());
        b.extend_from_slice(&at.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&at.to_le_bytes());
    }
    b
}

fn adtl(labels: &[(u32, &str)]) -> Vec<u8> {
    let mut b = b"adtl".to_vec();
    for &(id, text) in labels {
        let mut l = id.to_le_bytes().to_vec();
        l.extend_from_slice(text.as_bytes());
        l.push(0);
        b.extend_from_slice(b"labl");
        b.extend_from_slice(&(l.len() as u32).to_le_bytes());
        b.extend_from_slice(&l);
        if l.len() % 2 == 1 {
            b.push(0);
        }
    }
    b
}

/// The source: ffmpeg's `bext` and `LIST`, then `iXML`, `cue `, `adtl` and a 70 KiB
/// `id3 ` chunk (over the limit), the data, and the `guan` chunk where guano puts it.
fn make_source(dir: &Path) -> (std::path::PathBuf, Chunks) {
    let ff = dir.join("ff.wav");
    sh(ffmpeg()
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=f=1000:r={RATE}:d=2"))
        .args([
            "-c:a",
            "pcm_s16le",
            "-write_bext",
            "1",
            "-metadata",
            "title=dawn",
            "-metadata",
            &format!("comment={MOTH}"),
            "-metadata",
            "description=bat survey",
            "-metadata",
            "originator=Recorder X",
            "-metadata",
            "origination_date=2024-09-03",
            "-metadata",
            "origination_time=19:26:15",
        ])
        .arg(&ff));
    let g = dir.join("g.wav");
    sh(ffmpeg()
        .args(["-i"])
        .arg(&ff)
        .args([
            "-map_metadata",
            "-1",
            "-fflags",
            "+bitexact",
            "-c:a",
            "pcm_s16le",
        ])
        .arg(&g));
    sh(Command::new("python3").arg("-c").arg(
        "import sys, guano\ng = guano.GuanoFile(sys.argv[1])\ng['Make'] = 'Wildlife Acoustics'\ng['Species Auto ID'] = 'Myodau'\ng['Loc Position'] = (52.1, 4.3)\ng.write()\n",
    ).arg(&g));
    let ff = chunks_of(&std::fs::read(&ff).unwrap());
    let g = chunks_of(&std::fs::read(&g).unwrap());
    let get = |c: &Chunks, id: &[u8; 4]| c.iter().find(|(i, _)| i == id).unwrap().1.clone();
    let ixml = b"<?xml version=\"1.0\"?><BWFXML><PROJECT>moths</PROJECT></BWFXML>".to_vec();
    let chunks: Chunks = vec![
        (*b"fmt ", get(&g, b"fmt ")),
        (*b"bext", get(&ff, b"bext")),
        (*b"LIST", get(&ff, b"LIST")),
        (*b"iXML", ixml),
        (*b"cue ", cue(&[(1, 12_000), (2, 48_000), (3, 84_000)])),
        (*b"LIST", adtl(&[(1, "first"), (2, "call"), (3, "end")])),
        (*b"id3 ", vec![7; 70 << 10]),
        (*b"data", get(&g, b"data")),
        (*b"guan", get(&g, b"guan")),
    ];
    let src = dir.join("20240903_192615.wav");
    std::fs::write(&src, riff(&chunks)).unwrap();
    let kept = chunks
        .into_iter()
        .filter(|(id, _)| !matches!(id, b"fmt " | b"data" | b"id3 "))
        .collect();
    (src, kept)
}

#[test]
fn chunks_come_back_byte_for_byte() {
    if !python_has("guano") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (src, kept) = make_source(dir.path());
    let arch = dir.path().join("arch");
    let o = run(&[&"import", &arch, &src]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not kept: chunk \"id3 \" of 71680 bytes"),
        "{}",
        stderr(&o)
    );

    let out = dir.path().join("out.wav");
    let o = run(&[&"extract", &arch, &"20240903_192615", &"-o", &out]);
    assert!(o.status.success(), "{}", stderr(&o));
    let whole = std::fs::read(&out).unwrap();
    let served = chunks_of(&whole);
    let ids: Vec<&[u8; 4]> = served.iter().map(|(i, _)| i).collect();
    assert_eq!(
        ids,
        [
            b"fmt ", b"bext", b"LIST", b"iXML", b"cue ", b"LIST", b"guan", b"data"
        ]
    );
    for ((id, want), (_, got)) in kept.iter().zip(&served[1..]) {
        if id == b"bext" {
            // The start time rule: date and time as the source said, TimeReference the
            // first sample's position since midnight; everything else kept.
            assert_eq!(got.len(), want.len());
            assert_eq!(&got[..338], &want[..338]);
            let t = u64::from_le_bytes(got[338..346].try_into().unwrap());
            assert_eq!(t, (19 * 3600 + 26 * 60 + 15) * u64::from(RATE));
            assert_eq!(&got[346..], &want[346..]);
        } else {
            assert_eq!(got, want, "chunk {}", String::from_utf8_lossy(id));
        }
    }

    // A part: cue points inside it move, the others go with their labels.
    let part = dir.path().join("part.wav");
    let o = run(&[
        &"extract",
        &arch,
        &"20240903_192615",
        &"--start",
        &"0.5",
        &"--end",
        &"1.5",
        &"-o",
        &part,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p = chunks_of(&std::fs::read(&part).unwrap());
    let find = |c: &Chunks, id: &[u8; 4], nth: usize| {
        c.iter()
            .filter(|(i, _)| i == id)
            .nth(nth)
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(find(&p, b"cue ", 0), cue(&[(2, 24_000)]));
    assert_eq!(find(&p, b"LIST", 1), adtl(&[(2, "call")]));
    assert_eq!(find(&p, b"guan", 0), find(&served, b"guan", 0));

    let o = run(&[&"info", &arch, &"20240903_192615"]);
    let info = stdout(&o);
    for needle in [
        "kept chunks:          bext (602 bytes), LIST (",
        "GUANO Make: Wildlife Acoustics",
        "GUANO Species Auto ID: Myodau",
        "AudioMoth device: 24E144055E08003",
        "AudioMoth temperature: 21.3C",
        "INAM: dawn",
        "bext Originator: Recorder X",
    ] {
        assert!(info.contains(needle), "{needle:?} not in\n{info}");
    }

    if !fuse_available() {
        return;
    }
    let m = Mount::start(&arch, dir.path(), "mnt", &[]);
    let mounted = m.path("20240903_192615.wav");
    assert_eq!(std::fs::read(&mounted).unwrap(), whole);
    // The guano package reads the same fields from the mounted file.
    let o = Command::new("python3")
        .arg("-c")
        .arg("import sys, guano\ng = guano.GuanoFile(sys.argv[1])\nprint(g['Make'], '|', g['Species Auto ID'], '|', g['Loc Position'])")
        .arg(&mounted)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "Wildlife Acoustics | Myodau | (52.1, 4.3)"
    );
    // soundfile (libsndfile) reads the samples past the chunks.
    let o = Command::new("python3")
        .arg("-c")
        .arg("import sys, soundfile\nd, r = soundfile.read(sys.argv[1], dtype='int16')\nprint(len(d), r)")
        .arg(&mounted)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("{} {RATE}", 2 * RATE)
    );
}

/// A FLAC file's Vorbis comments (made by ffmpeg from a WAV's `LIST`/`INFO`) are served
/// as `LIST`/`INFO`, whether the FLAC stream is kept or decoded to PCM.
#[test]
fn flac_comments_are_served_as_info() {
    let dir = tempfile::tempdir().unwrap();
    let flac = dir.path().join("moth.flac");
    sh(ffmpeg()
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=f=1000:r={RATE}:d=1"))
        .args([
            "-metadata",
            "title=dawn",
            "-metadata",
            &format!("comment={MOTH}"),
        ])
        .args(["-metadata", "x-unmapped=1", "-c:a", "flac"])
        .arg(&flac));
    for codec in ["flac", "pcm"] {
        let arch = dir.path().join(codec);
        let o = run(&[&"import", &"--codec", &codec, &arch, &flac]);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = dir.path().join(format!("{codec}.wav"));
        let o = run(&[&"extract", &arch, &"moth", &"-o", &out]);
        assert!(o.status.success(), "{}", stderr(&o));
        let served = chunks_of(&std::fs::read(&out).unwrap());
        let list = &served.iter().find(|(i, _)| i == b"LIST").unwrap().1;
        let mut want = b"INFO".to_vec();
        for (id, text) in [(b"INAM", "dawn"), (b"ICMT", MOTH)] {
            let mut t = text.as_bytes().to_vec();
            t.push(0);
            want.extend_from_slice(id);
            want.extend_from_slice(&(t.len() as u32).to_le_bytes());
            want.extend_from_slice(&t);
            if t.len() % 2 == 1 {
                want.push(0);
            }
        }
        // ffmpeg adds ENCODER (ISFT) after the mapped comments it was given.
        assert!(
            list.starts_with(&want),
            "{codec}: {:?}",
            String::from_utf8_lossy(list)
        );
        let info = stdout(&run(&[&"info", &arch, &"moth"]));
        assert!(info.contains("AudioMoth gain: medium"), "{info}");
    }
}

/// Data bytes of a WAV file (the `data` chunk's body).
fn data_of(b: &[u8]) -> Vec<u8> {
    chunks_of(b)
        .into_iter()
        .find(|(i, _)| i == b"data")
        .unwrap()
        .1
}

/// `-o time_expansion=10`: a 384 kHz recording is shown as `NAME.TE10.wav` at 38,400 Hz
/// with the same samples and GUANO's `TE` set; a 48 kHz one stays as it is; `extract
/// --time-expansion 10` writes the same file.
#[test]
fn time_expanded_view() {
    let dir = tempfile::tempdir().unwrap();
    let bat = dir.path().join("bat.wav");
    common::write_wav(&bat, 384_000, 1, 16, false, 384_000 / 2);
    let bird = dir.path().join("bird.wav");
    common::write_wav(&bird, RATE, 1, 16, false, RATE as u64 / 2);
    let guano_ok = python_has("guano");
    if guano_ok {
        sh(Command::new("python3")
            .arg("-c")
            .arg("import sys, guano\ng = guano.GuanoFile(sys.argv[1])\ng['Make'] = 'AudioMoth'\ng['TE'] = 1\ng.write()\n")
            .arg(&bat));
    }
    let arch = dir.path().join("arch");
    let o = run(&[&"import", &arch, &bat, &bird]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plain = dir.path().join("plain.wav");
    assert!(
        run(&[&"extract", &arch, &"bat", &"-o", &plain])
            .status
            .success()
    );
    let te = dir.path().join("te.wav");
    let o = run(&[
        &"extract",
        &arch,
        &"bat",
        &"--time-expansion",
        &"10",
        &"-o",
        &te,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (plain, te) = (std::fs::read(&plain).unwrap(), std::fs::read(&te).unwrap());
    assert_eq!(data_of(&te), data_of(&plain));
    let fmt = &chunks_of(&te)[0].1;
    assert_eq!(u32::from_le_bytes(fmt[4..8].try_into().unwrap()), 38_400);
    if guano_ok {
        let g = chunks_of(&te)
            .into_iter()
            .find(|(i, _)| i == b"guan")
            .unwrap()
            .1;
        let text = String::from_utf8_lossy(&g).into_owned();
        assert!(
            text.contains("\nTE: 10\n") && !text.contains("TE: 1\n"),
            "{text}"
        );
    }
    // Below the threshold nothing changes.
    let o = run(&[
        &"extract",
        &arch,
        &"bird",
        &"--time-expansion",
        &"10",
        &"-o",
        &dir.path().join("b.wav"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let b = chunks_of(&std::fs::read(dir.path().join("b.wav")).unwrap());
    assert_eq!(u32::from_le_bytes(b[0].1[4..8].try_into().unwrap()), RATE);

    // serve shows the same file under the same name, and segments of it.
    let mut server = common::serve::Server::start(&arch, &["--time-expansion", "10"]);
    let http_get = |path: &str| -> Vec<u8> {
        let mut r = ureq::get(&server.url(path)).call().unwrap();
        r.body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap()
    };
    assert_eq!(http_get("/bat.TE10.wav"), te);
    let seg = dir.path().join("seg.wav");
    let o = run(&[
        &"extract",
        &arch,
        &"bat",
        &"--time-expansion",
        &"10",
        &"--start",
        &"0.1",
        &"--end",
        &"0.2",
        &"-o",
        &seg,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        http_get("/bat.TE10.wav?start=0.1&end=0.2"),
        std::fs::read(&seg).unwrap()
    );
    assert!(server.stop(std::time::Duration::from_secs(10)).success());

    if !fuse_available() {
        return;
    }
    let m = Mount::start(&arch, dir.path(), "mnt", &["-o", "time_expansion=10"]);
    let mut names: Vec<String> = std::fs::read_dir(&m.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["bat.TE10.wav", "bird.wav"]);
    let mounted = m.path("bat.TE10.wav");
    assert_eq!(std::fs::read(&mounted).unwrap(), te);
    let o = Command::new("soxi")
        .arg("-r")
        .arg(&mounted)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "38400");
}

/// MP3 (ID3v2), Ogg Vorbis (Vorbis comments) and M4A (MP4 atoms) tags written by ffmpeg
/// are served as `LIST`/`INFO` too.
#[test]
fn compressed_tags_are_served_as_info() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch");
    for (ext, codec, comment) in [
        ("mp3", "libmp3lame", false), // ffmpeg writes the comment as TXXX, which has no INFO field
        ("ogg", "libvorbis", true),
        ("m4a", "aac", true),
    ] {
        let input = dir.path().join(format!("{ext}.{ext}"));
        sh(ffmpeg()
            .args(["-f", "lavfi", "-i"])
            .arg("sine=f=1000:r=44100:d=1")
            .args(["-metadata", "title=dawn", "-metadata", "artist=lab"])
            .args(["-metadata", "comment=site 3", "-c:a", codec])
            .arg(&input));
        let o = run(&[&"import", &arch, &input]);
        assert!(o.status.success(), "{ext}: {}", stderr(&o));
        let info = stdout(&run(&[&"info", &arch, &ext]));
        for needle in ["INAM: dawn", "IART: lab"] {
            assert!(info.contains(needle), "{ext}: {needle:?} not in\n{info}");
        }
        assert_eq!(info.contains("ICMT: site 3"), comment, "{ext}:\n{info}");
        let out = dir.path().join(format!("{ext}.wav"));
        assert!(
            run(&[&"extract", &arch, &ext, &"-o", &out])
                .status
                .success()
        );
        let served = chunks_of(&std::fs::read(&out).unwrap());
        let list = &served.iter().find(|(i, _)| i == b"LIST").unwrap().1;
        assert!(list.starts_with(b"INFOINAM\x05\0\0\0dawn\0\0IART"), "{ext}");
    }
}

/// What a compressed input holds besides its audio track is named in the import's
/// warning: an MP3's cover picture, an M4A's second audio track.
#[test]
fn pictures_and_other_tracks_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("cover.png");
    sh(ffmpeg()
        .args(["-f", "lavfi", "-i", "color=c=red:s=32x32"])
        .args(["-frames:v", "1"])
        .arg(&png));
    let mp3 = dir.path().join("pic.mp3");
    sh(ffmpeg()
        .args(["-f", "lavfi", "-i", "sine=f=1000:r=44100:d=1", "-i"])
        .arg(&png)
        .args([
            "-map",
            "0",
            "-map",
            "1",
            "-c:a",
            "libmp3lame",
            "-c:v",
            "png",
        ])
        .args(["-id3v2_version", "3", "-disposition:v", "attached_pic"])
        .arg(&mp3));
    let m4a = dir.path().join("two.m4a");
    sh(ffmpeg()
        .args(["-f", "lavfi", "-i", "sine=f=1000:r=44100:d=1"])
        .args(["-f", "lavfi", "-i", "sine=f=500:r=44100:d=1"])
        .args(["-map", "0", "-map", "1", "-c:a", "aac"])
        .arg(&m4a));
    let arch = dir.path().join("arch");
    let png_len = std::fs::metadata(&png).unwrap().len();
    for (input, needle) in [
        (
            &mp3,
            format!("pic.mp3: not kept: an embedded picture (image/png, {png_len} bytes)"),
        ),
        (
            &m4a,
            "two.m4a: not kept: track 2 (not the default audio track)".to_string(),
        ),
    ] {
        let o = run(&[&"import", &arch, input]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(&needle),
            "{needle:?} not in {}",
            stderr(&o)
        );
    }
}
