#!/usr/bin/env python3
"""Reads a zarr-wavfs archive with zarr-python 3, independently of the Rust code.

Usage: zarr_python_check.py ARCHIVE RECORDING

RECORDING is the archive-relative recording path, e.g. ``demo/20250601_040000``
(a trailing ``.wav`` is accepted, as by the CLI).

Checks, against docs/FORMAT.md:
  * the root group is marked ``zarr_wavfs.kind == "archive"``, ``format_version`` 1 to 5;
  * the recording group is ``kind == "recording"``; from format version 5 its
    ``meta_sha256`` equals the SHA-256 of the other keys as compact JSON in the order
    stored (docs/FORMAT.md, "Metadata digest");
  * ``stream`` (uint8) reads fully, has ``stream_bytes`` bytes and starts with an Ogg page;
  * ``index`` is int64 of shape ``[index_rows, 4]`` and its SHA-256 (rows as
    little-endian i64) equals ``index_sha256``;
  * if ``checkpoints/states`` exists (sharded + zstd), its metadata opens and its shape is
    ``[count, state_size]`` (encoding ``full``) or ``[count, 2 × state_size]``
    (``seeded``). Full: the first state's digest matches ``checkpoints/digests``.
    Seeded (the digest needs libopus's warm-up): the first seed begins with the layout
    words of a decoder of the recording's channels and sample rate (mono and stereo).

Prints one JSON object on stdout; exits non-zero with a message on stderr on any failure.
"""

import hashlib
import struct
import json
import sys


def fail(msg: str) -> "NoReturn":  # noqa: F821
    print(f"zarr_python_check: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond: bool, msg: str) -> None:
    if not cond:
        fail(msg)


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        sys.exit(2)
    archive, rec = argv[1], argv[2].strip("/")

    try:
        import numpy as np
        import zarr
    except ImportError as e:
        fail(f"{e} (run scripts/setup.sh)")
    check(int(zarr.__version__.split(".")[0]) >= 3, f"zarr-python {zarr.__version__} < 3")

    try:
        root = zarr.open_group(archive, mode="r")
    except Exception as e:  # noqa: BLE001
        fail(f"cannot open {archive} as a Zarr group: {e!r}")
    check(root.metadata.zarr_format == 3, "root is not Zarr v3")
    marker = root.attrs.get("zarr_wavfs")
    check(isinstance(marker, dict), "root group has no zarr_wavfs attribute")
    check(marker.get("kind") == "archive", f"root kind is {marker.get('kind')!r}, not 'archive'")
    check(marker.get("format_version") in (1, 2, 3, 4, 5),
          f"root format_version is {marker.get('format_version')!r}, not 1 to 5")

    candidates = [rec] + ([rec[:-4]] if rec.endswith(".wav") else [])
    group = None
    for path in candidates:
        try:
            group = root[path]
            break
        except KeyError:
            continue
    if group is None:
        fail(f"no group {rec!r} in {archive}")
    check(isinstance(group, zarr.Group), f"{rec!r} is not a group")
    attrs = group.attrs.get("zarr_wavfs")
    check(isinstance(attrs, dict), f"{rec!r} has no zarr_wavfs attribute")
    check(attrs.get("kind") == "recording", f"{rec!r} kind is {attrs.get('kind')!r}")
    if attrs.get("format_version", 0) >= 5:
        rest = {k: v for k, v in attrs.items() if k != "meta_sha256"}
        text = json.dumps(rest, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(text.encode()).hexdigest()
        check(digest == attrs.get("meta_sha256"),
              f"metadata SHA-256 {digest} != meta_sha256 {attrs.get('meta_sha256')}")

    # stream: the Ogg Opus bytes
    stream = group["stream"]
    check(isinstance(stream, zarr.Array), "stream is not an array")
    check(stream.dtype == np.uint8 and stream.ndim == 1,
          f"stream is {stream.dtype} with {stream.ndim} dims, not 1-d uint8")
    data = np.asarray(stream[:]).tobytes()
    check(len(data) == attrs.get("stream_bytes"),
          f"stream has {len(data)} bytes, attrs say {attrs.get('stream_bytes')}")
    check(data[:4] == b"OggS", "stream does not start with an Ogg page (OggS)")

    # index: one int64 row per audio page
    index = group["index"]
    idx = np.asarray(index[:])
    check(idx.dtype == np.int64, f"index dtype is {idx.dtype}, not int64")
    rows = attrs.get("index_rows", attrs.get("index_pages"))
    check(list(idx.shape) == [rows, 4],
          f"index shape {list(idx.shape)} != [index_rows={rows}, 4]")
    index_digest = hashlib.sha256(idx.astype("<i8").tobytes()).hexdigest()
    check(index_digest == attrs.get("index_sha256"),
          f"index SHA-256 {index_digest} != index_sha256 {attrs.get('index_sha256')}")

    out = {
        "stream_sha256": hashlib.sha256(data).hexdigest(),
        "stream_len": len(data),
        "attrs": attrs,
        "index_shape": list(idx.shape),
        "index_first_row": [int(v) for v in idx[0]] if len(idx) else [],
    }

    # checkpoints: states is sharded (64 states per shard, one per inner chunk) + zstd
    if "checkpoints" in group:
        cp = group["checkpoints"]
        cp_attrs = cp.attrs.get("zarr_wavfs", {})
        out["checkpoints_count"] = cp_attrs.get("count")
        if "states" in cp:
            states = cp["states"]
            shape = list(states.shape)
            out["checkpoints_states_shape"] = shape
            codecs = [c.get("name") for c in states.metadata.to_dict().get("codecs", [])]
            out["checkpoints_states_codecs"] = codecs
            state_size = cp_attrs.get("fingerprint", {}).get("state_size")
            encoding = cp_attrs.get("encoding", "full")
            out["checkpoints_encoding"] = encoding
            row = state_size * (2 if encoding == "seeded" else 1)
            check(encoding in ("full", "seeded"), f"unknown checkpoint encoding {encoding!r}")
            check(shape == [cp_attrs.get("count"), row],
                  f"checkpoints/states shape {shape} != [count, {row}] ({encoding})")
            if shape[0] > 0 and encoding == "seeded" and attrs.get("channels", 0) <= 2:
                # a single decoder (mapping family 0); a multistream one starts otherwise
                seed = np.asarray(states[0]).astype(np.uint8).tobytes()[:state_size]
                celt, silk, channels, rate = struct.unpack("<4i", seed[:16])
                check(celt > 0 and silk > 0 and channels == attrs.get("channels")
                      and rate == attrs.get("sample_rate"),
                      f"seed 0 layout words {(celt, silk, channels, rate)} do not fit the recording")
            elif shape[0] > 0:
                state = np.asarray(states[0]).astype(np.uint8).tobytes()
                packet, sample = (int(v) for v in np.asarray(cp["positions"][0]))
                digest = np.asarray(cp["digests"][0]).astype(np.uint8).tobytes()
                h = hashlib.sha256()
                h.update(packet.to_bytes(8, "little"))
                h.update(sample.to_bytes(8, "little"))
                h.update(state)
                check(h.digest() == digest, "checkpoint 0 state does not match its digest")
                out["checkpoints_first_state_sha256"] = hashlib.sha256(state).hexdigest()

    json.dump(out, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    try:
        main(sys.argv)
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001
        fail(f"{type(e).__name__}: {e}")
