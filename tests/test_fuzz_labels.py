"""Property-based fuzzing of label-map decoding (gauguin.data.label_files, gauguin.data.label_scan).

Random small label maps in every mode training accepts (8-bit grey 'L', palette 'P', 16-bit
'I;16', bilevel '1', grey + alpha 'LA', RGB / RGBA colour maps, 32-bit 'I' TIFFs), files of a
mode it refuses ('F' TIFFs), random bytes, truncated and bit-flipped PNGs. For each file, decoding
it as training does (``SemanticDataset.decode_label_map``) either gives an int64 map of the image's
shape holding channel indices 0..num_labels-1 (the exact ones, when the content is known), or
raises BadDataError naming the file, never another exception; and the check every label map gets
when a dataset is built (``check_label_files``) accepts exactly the files that decode.
"""
from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gauguin.data import BadDataError, LabelFolder, Preprocessing

NUM_LABELS = 6
DONT_CARE = 255  # the dont-care dataset's raw "unlabeled" value
PALETTE = {0: (0, 0, 0), 1: (200, 30, 30), 2: (30, 200, 30), 3: (30, 30, 200), 4: (250, 250, 0), 5: (9, 9, 9)}
OFF_PALETTE = [(1, 2, 3), (255, 255, 255)]
SIZE = st.integers(1, 9)
_names = itertools.count()


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """Two tiny label folders: ids 0..5 with a colour palette, and ids 0..4 + don't-care 255."""
    root = tmp_path_factory.mktemp("fuzz_labels")
    for name in ("plain", "dont_care"):
        (root / name / "images").mkdir(parents=True)
        (root / name / "labels").mkdir()
        Image.new("RGB", (3, 2)).save(root / name / "images" / "a.png")
        Image.new("L", (3, 2)).save(root / name / "labels" / "a.png")
    still = Preprocessing(augment=False)
    plain = LabelFolder(root / "plain", prep=still, num_labels=NUM_LABELS, palette=PALETTE)
    dont_care = LabelFolder(root / "dont_care", prep=still, num_labels=NUM_LABELS, dont_care_id=DONT_CARE)
    files = root / "files"
    files.mkdir()
    return {"plain": plain, "dont_care": dont_care, "files": files}


# ---------------------------------------------------------------------------------- strategies
@st.composite
def id_arrays(draw, dtype=np.uint8, high=255):
    """Small id maps, mostly valid ids (0..6 covers both datasets' edges), sometimes any value."""
    height, width = draw(SIZE), draw(SIZE)
    common = st.sampled_from([0, 1, 4, 5, 6, DONT_CARE])
    values = draw(st.lists(st.one_of(common, common, st.integers(0, high)), min_size=height * width,
                           max_size=height * width))
    return np.array(values, dtype=np.int64).reshape(height, width).astype(dtype)


@st.composite
def label_files(draw):
    """``(bytes, suffix, kind, content, damage)``: kind "ids" (content: the raw ids), "colours"
    (content: the RGB pixels) or "refused" (a mode label maps may not have); damage "none",
    "truncate" (cut short), "flip" (one bit flipped) or "random" (random bytes, content None)."""
    mode = draw(st.sampled_from(["L", "P", "I;16", "1", "LA", "RGB", "RGBA", "I", "F"]))
    suffix = ".tif" if mode in ("I", "F") else ".png"
    if mode in ("RGB", "RGBA"):
        height, width = draw(SIZE), draw(SIZE)
        colours = list(PALETTE.values()) + OFF_PALETTE
        picks = draw(st.lists(st.integers(0, len(colours) - 1), min_size=height * width, max_size=height * width))
        rgb = np.array([colours[i] for i in picks], dtype=np.uint8).reshape(height, width, 3)
        image = Image.frombytes("RGB", (width, height), rgb.tobytes())
        if mode == "RGBA":
            image.putalpha(draw(st.integers(0, 255)))
        kind, content = "colours", rgb
    elif mode == "I;16":
        ids = draw(id_arrays(np.uint16, 65535))
        image, kind, content = Image.fromarray(ids), "ids", ids
    elif mode == "I":
        ids = draw(id_arrays(np.int32, 2**31 - 1)) * draw(st.sampled_from([1, -1]))
        image, kind, content = Image.fromarray(ids.astype(np.int32)), "ids", ids
    elif mode == "1":
        ids = draw(id_arrays()) % 2
        image, kind, content = Image.fromarray(ids.astype(bool)), "ids", ids
    elif mode == "LA":
        ids = draw(id_arrays())
        alpha = np.full_like(ids, draw(st.integers(0, 255)))
        image = Image.frombytes("LA", ids.shape[::-1], np.stack([ids, alpha], axis=2).tobytes())
        kind, content = "ids", ids
    elif mode == "F":
        image, kind, content = Image.fromarray(draw(id_arrays()).astype(np.float32)), "refused", None
    else:  # L, P
        ids = draw(id_arrays())
        image = Image.frombytes(mode, ids.shape[::-1], ids.tobytes())  # 'P': the index is the id
        if mode == "P":
            image.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
        kind, content = "ids", ids
    assert image.mode == mode
    buffer = io.BytesIO()
    image.save(buffer, "TIFF" if suffix == ".tif" else "PNG")
    data = buffer.getvalue()

    damage = draw(st.sampled_from(["none", "none", "truncate", "flip", "random"]))
    if damage == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "flip":
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ (1 << draw(st.integers(0, 7)))]) + data[at + 1 :]
    elif damage == "random":
        head = draw(st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", data[:33]]))
        data, content = head + draw(st.binary(max_size=120)), None
    return data, suffix, kind, content, damage


# ------------------------------------------------------------------------------------ oracle
def expected_channels(dataset: LabelFolder, kind: str, content: np.ndarray) -> np.ndarray | None:
    """The channel indices a file of known content must decode to, or None when it must be refused."""
    lut = np.asarray(dataset.raw_to_index)
    if kind == "colours":
        if dataset.palette is None:
            return None
        by_colour = {colour: i for i, colour in dataset.palette.items()}
        ids = [by_colour.get(tuple(int(c) for c in pixel)) for pixel in content.reshape(-1, 3)]
        if any(i is None for i in ids):
            return None
        raw = np.array(ids, dtype=np.int64).reshape(content.shape[:2])
    else:
        raw = content.astype(np.int64)
    if raw.min() < 0 or raw.max() >= len(lut) or (lut[raw] < 0).any():
        return None
    return lut[raw]


@pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # PIL warns of the corrupt TIFFs it is given
@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(case=label_files(), which=st.sampled_from(["plain", "dont_care"]))
def test_label_map_decoding_gives_valid_ids_or_a_clear_error(datasets, case, which):
    data, suffix, kind, content, damage = case
    dataset: LabelFolder = datasets[which]
    path: Path = datasets["files"] / f"map_{next(_names)}{suffix}"
    path.write_bytes(data)
    try:
        decoded = dataset.decode_label_map(path)
        error = None
    except BadDataError as err:  # any other exception fails the test
        decoded, error = None, err
    try:
        dataset.check_label_files([path], cache=False)
        check_error = None
    except BadDataError as err:
        check_error = err
    assert (error is None) == (check_error is None), (error, check_error)  # the up-front check agrees

    if error is not None:
        assert str(path) in str(error)  # the per-sample error names the file
        assert check_error.files == [path] and path.name in str(check_error)  # LabelMapError: its folder + name
        assert str(path) in str(check_error) or str(path.parent) in str(check_error)
        if damage == "none" and kind != "refused":
            assert expected_channels(dataset, kind, content) is None, error  # a good file was refused
        return
    assert damage != "none" or kind != "refused"
    with Image.open(path) as image:
        width, height = image.size
    assert decoded.dtype == np.int64 and decoded.shape == (height, width)
    assert 0 <= decoded.min() and decoded.max() < dataset.num_labels
    if damage in ("none", "truncate") and kind != "refused":  # a cut file that decodes must hold it all
        np.testing.assert_array_equal(decoded, expected_channels(dataset, kind, content))
