import cv2
import numpy as np
import pytest

from worldscape_ros.data.depth_io import DepthFileError, load_depth, save_depth
from worldscape_ros.errors import WorldScapeError


def _depth(h: int = 6, w: int = 8) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(0.3, 9.0, (h, w)).astype(np.float32)


def test_npy_depth_round_trips_exactly(tmp_path):
    d = _depth()
    save_depth(tmp_path / 'd.npy', d)
    out = load_depth(tmp_path / 'd.npy', shape=(6, 8))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, d)


def test_png_depth_round_trips_to_the_millimetre(tmp_path):
    d = _depth()
    save_depth(tmp_path / 'd.png', d)
    raw = cv2.imread(str(tmp_path / 'd.png'), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == (6, 8)
    out = load_depth(tmp_path / 'd.png')
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, d, atol=0.0005 + 1e-6)


def test_png_zero_means_no_measurement_and_loads_as_zero(tmp_path):
    raw = np.full((4, 5), 1500, np.uint16)
    raw[1, 2] = 0
    cv2.imwrite(str(tmp_path / 'd.png'), raw)
    out = load_depth(tmp_path / 'd.png')
    assert out[1, 2] == 0 and out[0, 0] == pytest.approx(1.5)


def test_float64_npy_is_accepted_as_metres(tmp_path):
    np.save(tmp_path / 'd.npy', _depth().astype(np.float64))
    assert load_depth(tmp_path / 'd.npy').dtype == np.float32


def test_depth_of_the_wrong_shape_is_refused_with_both_sizes(tmp_path):
    save_depth(tmp_path / 'd.npy', _depth(6, 8))
    with pytest.raises(DepthFileError, match=r'is 8x6 \(W x H\); the image it belongs to is 128x96'):
        load_depth(tmp_path / 'd.npy', shape=(96, 128))


def test_npy_that_is_not_one_map_is_refused(tmp_path):
    np.save(tmp_path / 'd.npy', np.ones((2, 6, 8), np.float32))
    with pytest.raises(DepthFileError, match=r'one \(H, W\) map, got shape \(2, 6, 8\)'):
        load_depth(tmp_path / 'd.npy')


def test_integer_npy_is_refused_because_its_unit_is_ambiguous(tmp_path):
    np.save(tmp_path / 'd.npy', np.ones((6, 8), np.uint16))
    with pytest.raises(DepthFileError, match='float32 metres, got dtype uint16'):
        load_depth(tmp_path / 'd.npy')


def test_non_finite_depth_is_refused_naming_where(tmp_path):
    d = _depth()
    d[2, 3] = np.nan
    d[4, 1] = np.inf
    np.save(tmp_path / 'd.npy', d)
    with pytest.raises(DepthFileError, match=r'2 non-finite values \(first at row 2, column 3\)'):
        load_depth(tmp_path / 'd.npy')


def test_negative_depth_is_refused(tmp_path):
    d = _depth()
    d[0, 0] = -1
    np.save(tmp_path / 'd.npy', d)
    with pytest.raises(DepthFileError, match='negative depths'):
        load_depth(tmp_path / 'd.npy')


def test_eight_bit_and_colour_pngs_are_refused(tmp_path):
    cv2.imwrite(str(tmp_path / 'grey8.png'), np.full((4, 5), 100, np.uint8))
    cv2.imwrite(str(tmp_path / 'colour.png'), np.full((4, 5, 3), 100, np.uint16))
    with pytest.raises(DepthFileError, match='is 8-bit; a depth PNG holds 16-bit millimetres'):
        load_depth(tmp_path / 'grey8.png')
    with pytest.raises(DepthFileError, match='has 3 channels'):
        load_depth(tmp_path / 'colour.png')


def test_missing_unreadable_and_unknown_files_are_refused(tmp_path):
    with pytest.raises(DepthFileError, match='does not exist'):
        load_depth(tmp_path / 'nothing.npy')
    (tmp_path / 'bad.npy').write_bytes(b'not numpy')
    with pytest.raises(DepthFileError, match='not a readable .npy array'):
        load_depth(tmp_path / 'bad.npy')
    (tmp_path / 'bad.png').write_bytes(b'not a png')
    with pytest.raises(DepthFileError, match='cannot be read as a PNG'):
        load_depth(tmp_path / 'bad.png')
    with pytest.raises(DepthFileError, match=r'expected a .npy .* or a .png'):
        load_depth(tmp_path / 'd.exr')


def test_depth_errors_are_project_errors_and_value_errors():
    assert issubclass(DepthFileError, WorldScapeError) and issubclass(DepthFileError, ValueError)


def test_a_png_refuses_depths_beyond_sixty_five_metres(tmp_path):
    with pytest.raises(DepthFileError, match='write .npy instead'):
        save_depth(tmp_path / 'far.png', np.full((2, 2), 70.0))
    assert not (tmp_path / 'far.png').exists()
