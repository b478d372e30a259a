"""MP4s and contact sheets: what is written is what was given, files appear whole."""

import numpy as np
import pytest

from worldscape_ros.tools.video import colorize_depth, contact_sheet, panel, read_mp4, write_mp4, write_png


def test_mp4_round_trip_keeps_frame_count_size_and_content(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    frames = [np.roll(base, 4 * k, axis=1) for k in range(12)]
    path = write_mp4(tmp_path / 'out' / 'roll.mp4', [panel(f, None, scale=4) for f in frames], fps=10)
    back = read_mp4(path)
    assert len(back) == 12 and back[0].shape == (192, 256, 3)
    # lossy codec: each decoded frame is closest to its own source frame
    for k in (0, 5, 11):
        errs = [np.abs(back[k].astype(int) - panel(f, None, scale=4)).mean() for f in frames]
        assert int(np.argmin(errs)) == k
    assert [p.name for p in (tmp_path / 'out').iterdir()] == ['roll.mp4']


def test_mp4_pads_odd_sizes_and_rejects_mixed_frames(tmp_path):
    odd = [np.zeros((47, 63, 3), np.uint8)] * 3
    assert read_mp4(write_mp4(tmp_path / 'odd.mp4', odd, fps=5))[0].shape == (48, 64, 3)
    with pytest.raises(ValueError, match='every frame must be'):
        write_mp4(tmp_path / 'bad.mp4', [np.zeros((8, 8, 3), np.uint8), np.zeros((4, 8, 3), np.uint8)], fps=5)
    assert not (tmp_path / 'bad.mp4').exists()
    assert [p.name for p in tmp_path.iterdir()] == ['odd.mp4'], 'a failed write left a temp file'
    with pytest.raises(ValueError, match='no frames'):
        write_mp4(tmp_path / 'none.mp4', [], fps=5)


def test_depth_colours_are_fixed_over_frames_and_unknown_is_black():
    d = np.array([[1.0, 1.0], [np.nan, np.inf]], np.float32)
    c = colorize_depth(d)
    assert (c[1] == 0).all() and (c[0, 0] == c[0, 1]).all() and c[0, 0].any()
    near, far = colorize_depth(np.full((1, 1), 0.5, np.float32)), colorize_depth(np.full((1, 1), 8.0, np.float32))
    assert not np.array_equal(near, far)


def test_contact_sheet_spreads_frames_evenly_in_a_grid(tmp_path):
    frames = [np.full((10, 20, 3), k, np.uint8) for k in range(30)]
    sheet = contact_sheet(frames, columns=4, count=8)
    assert sheet.shape == (2 * (10 + 18), 4 * 24 - 4, 3)
    assert sheet[0, 0, 0] == 0 and sheet[28 + 5, 3 * 24 + 5, 0] == 29  # first and last frame included
    png = write_png(tmp_path / 'sheet.png', sheet)
    import cv2
    assert cv2.imread(str(png)).shape == sheet.shape
