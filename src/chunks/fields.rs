//! The kept chunks as text fields, for `info`: `LIST`/`INFO` entries, GUANO, the
//! AudioMoth comment and the `bext` text fields.

use super::{Chunk, ChunkId};

/// One decoded field: a name and its text.
pub type Field = (String, String);

/// The fields a chunk holds, in the chunk's order; empty for chunks without text fields.
pub fn fields(c: &Chunk) -> Vec<Field> {
    match c.id {
        ChunkId::LIST if c.body.starts_with(b"INFO") => info_list(&c.body),
        ChunkId::GUANO => guano(&String::from_utf8_lossy(&c.body)),
        ChunkId::BEXT => bext(&c.body),
        _ => Vec::new(),
    }
}

/// Text up to the first NUL, trailing spaces dropped.
fn text(b: &[u8]) -> String {
    let b = b.split(|&x| x == 0).next().unwrap_or(b);
    String::from_utf8_lossy(b).trim_end().to_string()
}

/// `LIST`/`INFO`: sub-chunks `IART`, `ICMT`, … each holding text. An AudioMoth comment
/// is decoded into its parts after the comment itself.
fn info_list(b: &[u8]) -> Vec<Field> {
    let mut out = Vec::new();
    for (id, body) in super::info::entries(b) {
        let value = text(body);
        let moth = if id == b"ICMT" {
            audiomoth(&value)
        } else {
            Vec::new()
        };
        out.push((String::from_utf8_lossy(id).into_owned(), value));
        out.extend(moth);
    }
    out
}

/// GUANO (guano.readthedocs.io): a first line `GUANO|Version: 1.0`, then `Key: value`
/// lines (namespaced keys as `NS|Key`).
fn guano(s: &str) -> Vec<Field> {
    s.lines()
        .filter_map(|l| {
            let l = l.trim_matches(|c: char| c == '\0' || c.is_whitespace());
            let (k, v) = l.split_once(':')?;
            Some((format!("GUANO {}", k.trim()), v.trim().to_string()))
        })
        .collect()
}

/// The text fields of `bext`: Description, Originator, OriginatorReference,
/// OriginationDate, OriginationTime, and CodingHistory (after the 602 bytes of fields).
fn bext(b: &[u8]) -> Vec<Field> {
    let field = |name: &str, r: std::ops::Range<usize>| {
        let v = text(b.get(r).unwrap_or_default());
        (!v.is_empty()).then(|| (format!("bext {name}"), v))
    };
    [
        field("Description", 0..256),
        field("Originator", 256..288),
        field("OriginatorReference", 288..320),
        field("OriginationDate", 320..330),
        field("OriginationTime", 330..338),
        field("CodingHistory", 602..b.len().max(602)),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The parts of an AudioMoth comment: `Recorded at 20:26:15 03/09/2024 (UTC+1) by
/// AudioMoth 24E144055E08003 at medium gain while battery was 4.2V and temperature was
/// 21.3C.` (firmware versions word it slightly differently; what is not found is left out).
fn audiomoth(c: &str) -> Vec<Field> {
    let Some(rest) = c.strip_prefix("Recorded at ") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut push = |k: &str, v: &str| {
        let v = v.trim().trim_end_matches('.');
        if !v.is_empty() {
            out.push((format!("AudioMoth {k}"), v.to_string()));
        }
    };
    let (when, rest) = rest.split_once(" by ").unwrap_or((rest, ""));
    push("time", when);
    let device = rest.strip_prefix("AudioMoth ").unwrap_or(rest);
    let id = device.split_whitespace().next().unwrap_or("");
    push("device", id);
    if let Some(g) = rest.split_once(" at ").map(|(_, g)| g)
        && let Some((gain, _)) = g.split_once(" gain")
    {
        push("gain", gain);
    }
    if let Some((_, b)) = rest.split_once("battery ") {
        let b = b
            .strip_prefix("was ")
            .or(b.strip_prefix("state was "))
            .unwrap_or(b);
        push("battery", b.split(" and ").next().unwrap_or(b));
    }
    if let Some((_, t)) = rest.split_once("temperature was ") {
        push("temperature", t.split_whitespace().next().unwrap_or(t));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiomoth_comment() {
        let f = audiomoth(
            "Recorded at 20:26:15 03/09/2024 (UTC+1) by AudioMoth 24E144055E08003 at medium gain while battery was 4.2V and temperature was 21.3C.",
        );
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("AudioMoth time"), Some("20:26:15 03/09/2024 (UTC+1)"));
        assert_eq!(get("AudioMoth device"), Some("24E144055E08003"));
        assert_eq!(get("AudioMoth gain"), Some("medium"));
        assert_eq!(get("AudioMoth battery"), Some("4.2V"));
        assert_eq!(get("AudioMoth temperature"), Some("21.3C"));
        assert!(audiomoth("hello").is_empty());
    }

    #[test]
    fn guano_and_info() {
        let g = Chunk::new(
            ChunkId::GUANO,
            b"GUANO|Version: 1.0\nMake: Wildlife Acoustics\nSpecies Auto ID: Myodau\nLoc Position: 52.1 4.3\n\0".to_vec(),
        );
        assert_eq!(
            fields(&g),
            vec![
                ("GUANO GUANO|Version".into(), "1.0".into()),
                ("GUANO Make".into(), "Wildlife Acoustics".into()),
                ("GUANO Species Auto ID".into(), "Myodau".into()),
                ("GUANO Loc Position".into(), "52.1 4.3".into()),
            ]
        );
        let mut list = b"INFO".to_vec();
        Chunk::new(ChunkId(*b"INAM"), b"dawn\0".to_vec()).push(&mut list);
        Chunk::new(ChunkId(*b"ISFT"), b"Lavf\0".to_vec()).push(&mut list);
        assert_eq!(
            fields(&Chunk::new(ChunkId::LIST, list)),
            vec![
                ("INAM".into(), "dawn".into()),
                ("ISFT".into(), "Lavf".into())
            ]
        );
    }
}
