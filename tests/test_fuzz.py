"""Property-based fuzzing (hypothesis) of the loaders and checks: a valid volume or one clear error, nothing else.

Whatever the bytes of a file, the array in it or the setting given, loading either returns a
float32 ``(1, H, W, D)`` volume that is finite, not constant and large enough to denoise, or
raises :class:`~c2s_monai.errors.InputError` (``FileNotFoundError`` for a missing file) naming
the input: never another exception, never a volume that fails later. Examples are derandomised so
CI runs the same ones every time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import torch
from helpers import make_dicom_series
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from monai.data import MetaTensor

from c2s_monai.errors import InputError
from c2s_monai.intensity import MIN_SIGMA, check_sigma_data
from c2s_monai.io import load_volume
from c2s_monai.io.readers import read_dicom_series
from c2s_monai.transforms import MIN_IN_PLANE, EnsureVolume, ScaleNoisyImage

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
NAME = "fuzz_input.nii.gz"


def _valid_volume(volume: torch.Tensor, channels: int | None = 1) -> None:
    assert volume.dtype == torch.float32 and volume.ndim == 4
    assert channels is None or volume.shape[0] == channels
    assert min(volume.shape[1:3]) >= MIN_IN_PLANE
    assert bool(torch.isfinite(volume).all())
    assert float(volume[0].max() - volume[0].min()) > 0


def _named_error(error: BaseException, name: str) -> None:
    assert isinstance(error, (InputError, FileNotFoundError)), f"{type(error).__name__}: {error}"
    assert name in str(error), str(error)


_dtypes = st.sampled_from([np.float32, np.float64, np.int16, np.uint8, np.bool_, np.complex64])


@st.composite
def _arrays(draw):
    dtype = draw(_dtypes)
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=5, min_side=0, max_side=12))
    if int(np.prod(shape)) > 4000:
        shape = shape[:2]
    elements = None
    if dtype in (np.float32, np.float64):
        elements = st.floats(width=32, allow_nan=True, allow_infinity=True)
    return draw(hnp.arrays(dtype, shape, elements=elements))


@FUZZ
@given(_arrays(), st.sampled_from([1, None]))
def test_ensure_volume_returns_a_valid_volume_or_one_named_error(array, channels):
    image = MetaTensor(torch.as_tensor(array), meta={"filename_or_obj": NAME})
    try:
        volume = EnsureVolume(num_channels=channels)(image)
    except Exception as error:  # noqa: BLE001 - the property is about the type
        _named_error(error, NAME)
    else:
        _valid_volume(volume, channels)


def _nifti_bytes(suffix: str) -> bytes:
    rng = np.random.default_rng(0)
    data = (rng.normal(100, 10, (12, 10, 3))).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"source{suffix}"
        nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.2, 3.0, 1.0])), str(path))
        return path.read_bytes()


RAW = {".nii": _nifti_bytes(".nii"), ".nii.gz": _nifti_bytes(".nii.gz")}


@FUZZ
@given(
    st.sampled_from(sorted(RAW)),
    st.one_of(
        st.tuples(st.just("truncate"), st.integers(0, 400)),
        st.tuples(st.just("flip"), st.lists(st.tuples(st.integers(0, 700), st.integers(0, 255)), min_size=1, max_size=8)),
    ),
)
def test_a_damaged_nifti_loads_as_a_valid_volume_or_one_named_error(suffix, damage):
    raw = bytearray(RAW[suffix])
    kind, how = damage
    if kind == "truncate":
        raw = raw[: min(how, len(raw) - 1)]
    else:
        for offset, value in how:
            raw[offset % len(raw)] = value
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"damaged{suffix}"
        path.write_bytes(bytes(raw))
        try:
            volume = load_volume(path)
        except Exception as error:  # noqa: BLE001
            _named_error(error, path.name)
        else:
            _valid_volume(volume)


@FUZZ
@given(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10), st.text(max_size=8), st.none(), st.booleans(),
        st.sampled_from(["auto", "MAD", " background ", "1e-3", "-0.5", "nan", "inf"]), st.lists(st.floats(), max_size=2),
    )
)
def test_sigma_data_is_a_positive_number_an_estimator_or_one_error(value):
    try:
        checked = check_sigma_data(value)
    except InputError as error:
        assert "sigma_data must be" in str(error)
    else:
        assert checked in ("auto", "mad", "background") or (isinstance(checked, float) and np.isfinite(checked) and checked > 0)


@FUZZ
@given(
    hnp.arrays(np.float32, st.tuples(st.integers(8, 20), st.integers(8, 20), st.integers(1, 3)),
               elements=st.floats(-1e4, 1e4, width=32)),
    st.sampled_from(["auto", "mad", "background"]),
)
def test_noise_estimation_of_any_valid_volume_gives_a_level_or_one_named_error(array, estimator):
    try:
        volume = EnsureVolume(num_channels=1)(MetaTensor(torch.as_tensor(array)[None], meta={"filename_or_obj": NAME}))
    except InputError:
        return
    try:
        scaled, sigma, scale = ScaleNoisyImage(estimator)(volume)
    except Exception as error:  # noqa: BLE001
        _named_error(error, NAME)
    else:
        assert np.isfinite(sigma) and sigma >= MIN_SIGMA and np.isfinite(scale) and scale > 0
        assert bool(torch.isfinite(scaled).all())


@settings(max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 6), min_size=1, max_size=5, unique=True), st.floats(-1.0, 1.0), st.integers(0, 4))
def test_a_dicom_stack_is_one_regular_series_or_one_named_error(tmp_path_factory, steps, jitter, jittered):
    """Slices at arbitrary step positions (gaps, a jittered slice): a uniform sorted stack or an error naming the folder."""
    folder = tmp_path_factory.mktemp("series")
    make_dicom_series(folder, num_slices=7)
    files = sorted(folder.iterdir(), key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[0]))
    kept = [files[i] for i in steps]
    for path in set(files) - set(kept):
        path.unlink()
    if jittered < len(kept):
        ds = pydicom.dcmread(kept[jittered])
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0] + jitter, *ds.ImagePositionPatient[1:]]
        ds.save_as(kept[jittered], enforce_file_format=True)
    try:
        _, _, positions = read_dicom_series(folder)
    except InputError as error:
        assert folder.name in str(error)
    else:
        assert np.all(np.diff(positions) > 0)
        if len(positions) > 2:
            step = np.median(np.diff(positions))
            assert np.max(np.abs(np.diff(positions) - step)) <= max(0.02 * step, 0.01)
