"""Multi-contrast C2S (docs/method.md section 9, docs/multicontrast.md): stacking, grids, datalists, joint mode.

The data: two "subjects" cut (48 x 48 x 3) from the co-registered noisy MNI T1, pseudo-T2 and
pseudo-PD volumes of ``c2s_monai.io.sample_data.write_multicontrast_subject``, at two places of
the head. Every bad multi-contrast input below has a case name that docs/bad-inputs.md lists.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import create_workflow
from monai.data import MetaTensor
from torch import nn

from c2s_monai import denoise_subject, train_multicontrast
from c2s_monai.cli import _denoise_multicontrast
from c2s_monai.context import DEFAULT_CONTEXT_SLICES
from c2s_monai.errors import InputError
from c2s_monai.inferers import C2SInferer, denoising_record
from c2s_monai.intensity import contrast_sigma_data, intensity_scale
from c2s_monai.io import load_volume
from c2s_monai.io.sample_data import write_multicontrast_subject
from c2s_monai.multicontrast import (
    StackContrasts,
    StackContrastsd,
    check_contrasts,
    denoising_targets,
    load_datalist,
    read_channel_order,
    rotate_target,
    target_items,
)
from c2s_monai.networks import NoiseConditionedUNet
from c2s_monai.transforms import ScaleNoisyImage

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundle" / "configs"
DOCS = REPO / "docs" / "bad-inputs.md"
CONTRASTS = ["t1", "t2", "pd"]
TINY = [8, 8, 16, 32, 64, 8]
TINY_INFER = {"features": TINY, "flips": 1, "slice_batch": 4}
TINY_TRAIN = {"max_epochs": 1, "iterations_per_epoch": 2, "batch_size": 2, "patch_size": 32, "warmup_iterations": 1}
CORNERS = {"sub-0": (60, 80), "sub-1": (100, 120)}

pytestmark = pytest.mark.usefixtures("one_thread")


def _digest(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """``<root>/sub-K/{t1,t2,pd}.nii.gz`` (K = 0, 1) and ``<root>/subjects.json`` (relative paths)."""
    root = tmp_path_factory.mktemp("multicontrast")
    full = write_multicontrast_subject(root / "full", sigma=0.06, first=80, last=86, step=2)
    entries = []
    for subject, (x, y) in CORNERS.items():
        (root / subject).mkdir()
        entry = {"subject": subject}
        for name, path in full.items():
            crop = nib.load(path).slicer[x : x + 48, y : y + 48, :]
            crop.header["descrip"] = f"{subject} {name}".encode()
            nib.save(crop, root / subject / f"{name}.nii.gz")
            entry[name] = f"{subject}/{name}.nii.gz"
        entries.append(entry)
    (root / "subjects.json").write_text(json.dumps(entries))
    return root


def _volumes(data: Path, subject: str = "sub-0") -> dict[str, MetaTensor]:
    return {name: load_volume(data / subject / f"{name}.nii.gz") for name in CONTRASTS}


def _moved(data: Path, tmp_path: Path, name: str, affine=None, array=None) -> Path:
    """A copy of sub-0's ``name`` volume with another affine and/or voxel array."""
    source = nib.load(data / "sub-0" / f"{name}.nii.gz")
    image = nib.Nifti1Image(source.get_fdata().astype(np.float32) if array is None else array.astype(np.float32),
                            source.affine if affine is None else affine)
    path = tmp_path / f"moved_{name}.nii.gz"
    nib.save(image, path)
    return path


# ------------------------------------------------------------------ channel order


def test_channel_order_puts_the_target_first_and_keeps_the_configured_order():
    assert rotate_target(["t1", "t2", "flair"], "t2") == ["t2", "t1", "flair"]
    assert rotate_target(["t1", "t2", "flair"], "flair") == ["flair", "t1", "t2"]
    assert denoising_targets(["t1", "t2", "flair"], "t2", joint=True) == ["t1", "t2", "flair"]
    assert denoising_targets(["t1", "t2", "flair"], "t2", joint="false") == ["t2"]
    assert check_contrasts("t1, t2,flair") == ["t1", "t2", "flair"]
    with pytest.raises(InputError, match=r"target contrast 'pd' is not one of the contrasts \['t1', 't2'\]"):
        rotate_target(["t1", "t2"], "pd")
    with pytest.raises(InputError, match=r"names \['t1'\] twice"):
        check_contrasts(["t1", "t2", "t1"])
    with pytest.raises(InputError, match="cannot name a contrast"):
        check_contrasts(["t1", "../t2"])
    with pytest.raises(InputError, match="cannot name a contrast"):
        check_contrasts(["image", "t2"])


def test_stacking_order_target_and_meta(data):
    volumes = _volumes(data)
    item = {**volumes, "subject": "sub-0", "target_contrast": "t2"}
    out = StackContrastsd(CONTRASTS)(item)
    image = out["image"]
    assert image.shape == (3, 48, 48, 3)
    for channel, name in enumerate(["t2", "t1", "pd"]):
        torch.testing.assert_close(image[channel].as_tensor(), volumes[name][0].as_tensor())
    assert out["target_contrast"] == "t2"
    assert not set(CONTRASTS) & set(out)  # the single-contrast volumes are dropped
    assert image.meta["contrasts"] == ["t2", "t1", "pd"] and image.meta["target_contrast"] == "t2"
    assert image.meta["filename_or_obj"].endswith("sub-0/t2.nii.gz")  # outputs are written on the target's grid
    assert [Path(f).name for f in image.meta["contrast_files"]] == ["t2.nii.gz", "t1.nii.gz", "pd.nii.gz"]
    np.testing.assert_allclose(np.asarray(image.affine), np.asarray(volumes["t2"].affine))
    # a fixed target wins over the item's; without either, the first contrast is the target
    assert StackContrastsd(CONTRASTS, target="pd")(item)["image"].meta["contrasts"] == ["pd", "t1", "t2"]
    assert StackContrastsd(CONTRASTS)(dict(volumes))["image"].meta["contrasts"] == ["t1", "t2", "pd"]


# ------------------------------------------------------------------ grids


def test_guide_of_another_shape_is_refused_naming_both_files(data, tmp_path):
    array = np.concatenate([nib.load(data / "sub-0" / "t2.nii.gz").get_fdata()] * 2, axis=-1)
    guide = load_volume(_moved(data, tmp_path, "t2", array=array))
    target = load_volume(data / "sub-0" / "t1.nii.gz")
    with pytest.raises(InputError) as raised:
        StackContrasts()([target, guide], ["t1", "t2"])
    message = str(raised.value)
    assert "moved_t2.nii.gz (t2) is not on the voxel grid of" in message and "sub-0/t1.nii.gz (t1)" in message
    assert "shape (48, 48, 6) vs (48, 48, 3) voxels" in message and "resample_guides true" in message


def test_guide_of_another_voxel_size_is_refused(data, tmp_path):
    affine = nib.load(data / "sub-0" / "pd.nii.gz").affine.copy()
    affine[:3, 0] *= 1.5
    guide = load_volume(_moved(data, tmp_path, "pd", affine=affine))
    with pytest.raises(InputError, match=r"moved_pd\.nii\.gz \(pd\) is not on the voxel grid of .*t1\.nii\.gz \(t1\): voxel size \(1\.5, 1, 2\) vs \(1, 1, 2\) mm"):
        StackContrasts()([load_volume(data / "sub-0" / "t1.nii.gz"), guide], ["t1", "pd"])


def test_guide_at_another_position_is_refused_unless_within_tolerance(data, tmp_path):
    target = load_volume(data / "sub-0" / "t1.nii.gz")
    affine = nib.load(data / "sub-0" / "t2.nii.gz").affine.copy()
    affine[0, 3] += 2.0
    shifted = load_volume(_moved(data, tmp_path, "t2", affine=affine))
    with pytest.raises(InputError, match=r"\(t2\) is not on the voxel grid .*: the same voxel lies up to 2 mm apart in the two"):
        StackContrasts()([target, shifted], ["t1", "t2"])
    affine[0, 3] -= 2.0 - 2e-4  # 0.2 micrometre: the same grid within the default 1e-3 mm
    nearly = load_volume(_moved(data, tmp_path, "t2", affine=affine))
    assert StackContrasts()([target, nearly], ["t1", "t2"]).shape == (2, 48, 48, 3)
    with pytest.raises(InputError, match=r"lies up to 0\.000\d+ mm apart"):
        StackContrasts(tolerance=1e-5)([target, nearly], ["t1", "t2"])


def test_resampling_brings_a_shifted_guide_onto_the_target_grid(data, tmp_path):
    target = load_volume(data / "sub-0" / "t1.nii.gz")
    t2 = nib.load(data / "sub-0" / "t2.nii.gz")
    # the same t2 content on a grid moved by +3 voxels along x: guide voxel i is target voxel i + 3
    affine = t2.affine.copy()
    affine[:3, 3] += 3 * affine[:3, 0]
    array = np.zeros(t2.shape, np.float32)
    array[:-3] = t2.get_fdata()[3:]
    guide = load_volume(_moved(data, tmp_path, "t2", affine=affine, array=array))
    with pytest.raises(InputError, match="lies up to 3 mm apart"):
        StackContrasts()([target, guide], ["t1", "t2"])
    stacked = StackContrasts(resample=True)([target, guide], ["t1", "t2"])
    assert stacked.shape == (2, 48, 48, 3)
    np.testing.assert_allclose(stacked[1, 3:].numpy(), t2.get_fdata()[3:], atol=1e-5)  # an integer shift: exact
    assert float(stacked[1, :3].abs().max()) == 0.0  # outside the guide's field of view
    np.testing.assert_allclose(np.asarray(stacked.affine), np.asarray(target.affine))

    # a coarser guide of another shape (2 mm in-plane): resampled to the target's shape, close to the original
    coarse_affine = t2.affine.copy()
    coarse_affine[:3, :2] *= 2
    coarse = load_volume(_moved(data, tmp_path, "t2", affine=coarse_affine, array=t2.get_fdata()[::2, ::2]))
    resampled = StackContrasts(resample=True)([target, coarse], ["t1", "t2"])[1].numpy()
    assert resampled.shape == (48, 48, 3)
    inside = resampled[:46, :46]
    assert np.corrcoef(inside.ravel(), t2.get_fdata()[:46, :46].ravel())[0, 1] > 0.8


def test_resampled_guide_outside_the_target_is_refused(data, tmp_path):
    affine = nib.load(data / "sub-0" / "t2.nii.gz").affine.copy()
    affine[0, 3] += 500.0
    far = load_volume(_moved(data, tmp_path, "t2", affine=affine))
    with pytest.raises(InputError, match=r"moved_t2\.nii\.gz \(t2\) covers only 0% of the field of view of .*t1\.nii\.gz \(t1\)"):
        StackContrasts(resample=True)([load_volume(data / "sub-0" / "t1.nii.gz"), far], ["t1", "t2"])


# ------------------------------------------------------------------ missing contrasts


def test_missing_guide_and_missing_target_name_the_subject_and_contrast(data):
    volumes = _volumes(data)
    without_pd = {"t1": volumes["t1"], "t2": volumes["t2"], "subject": "sub-0", "target_contrast": "t1"}
    with pytest.raises(InputError, match=r"subject sub-0: no 'pd' image, a guide of the 't1' network \(input channels \['t1', 't2', 'pd'\]\); add .* single-contrast model"):
        StackContrastsd(CONTRASTS)(without_pd)
    with pytest.raises(InputError, match=r"subject sub-0: no 'pd' image to denoise"):
        StackContrastsd(CONTRASTS)({**without_pd, "target_contrast": "pd"})
    # without a subject id the message names one of its files
    with pytest.raises(InputError, match=r"the subject of .*sub-0/t1\.nii\.gz: no 'pd' image"):
        StackContrastsd(CONTRASTS)({**without_pd, "subject": "", "pd": None})


# ------------------------------------------------------------------ intensities and sigma


def test_each_channel_is_scaled_by_its_own_scale_and_sigma_is_the_targets():
    generator = torch.Generator().manual_seed(0)
    target = 100.0 + 50.0 * torch.rand(1, 32, 32, 2, generator=generator)
    guide = 7000.0 * torch.rand(1, 32, 32, 2, generator=generator)
    scaled, sigma, scale = ScaleNoisyImage(sigma_data=5.0)(torch.cat([target, guide]))
    assert scale == pytest.approx(intensity_scale(target))
    assert sigma == pytest.approx(5.0 / intensity_scale(target))
    torch.testing.assert_close(scaled[0], target[0] / intensity_scale(target))
    torch.testing.assert_close(scaled[1], guide[0] / intensity_scale(guide))
    assert float(torch.quantile(scaled[1].abs().flatten(), 0.995)) == pytest.approx(1.0, rel=1e-4)
    # the guide's units do not matter, and the target's network input is that of a single-contrast run
    rescaled, sigma_2, scale_2 = ScaleNoisyImage(sigma_data=5.0)(torch.cat([target, guide / 1000.0]))
    torch.testing.assert_close(rescaled, scaled)
    single, sigma_1, scale_1 = ScaleNoisyImage(sigma_data=5.0)(target)
    torch.testing.assert_close(single[0], scaled[0])
    assert (sigma_1, scale_1) == (sigma, scale) == (sigma_2, scale_2)


def test_target_channel_scaling_keeps_every_channel_in_the_targets_units():
    # a clean reference riding beside the noisy image (the supervised bound) must stay in its units
    generator = torch.Generator().manual_seed(0)
    noisy = 100.0 + 50.0 * torch.rand(1, 32, 32, 2, generator=generator)
    clean = 0.8 * noisy
    scaled, _, scale = ScaleNoisyImage(sigma_data=5.0, channel_scaling="target")(torch.cat([noisy, clean]))
    assert scale == pytest.approx(intensity_scale(noisy))
    torch.testing.assert_close(scaled[1], 0.8 * scaled[0])
    with pytest.raises(ValueError, match="channel_scaling"):
        ScaleNoisyImage(channel_scaling="each")


class Gain(nn.Module):
    """Returns the target channel times ``gain`` (the network contract, without learning)."""

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * self.gain


def test_inferer_picks_each_targets_network_and_sigma():
    assert contrast_sigma_data({"t1": "12.5", "t2": "auto"}, "t1") == 12.5
    with pytest.raises(InputError, match=r"sigma_data is given per contrast .* it has no value for the 'pd' contrast"):
        contrast_sigma_data({"t1": 1.0}, "pd")
    with pytest.raises(InputError, match="sigma_data must be"):
        C2SInferer(sigma_data={"t1": -1.0})
    inputs = 100.0 + 20.0 * torch.rand(2, 2, 20, 24)
    networks = nn.ModuleDict({"t1": Gain(1.0), "t2": Gain(2.0)})
    inferer = C2SInferer(sigma_data={"t1": 3.0, "t2": 6.0}, flips=1)
    out = inferer(inputs, networks, target_contrast=["t2", "t1"])
    torch.testing.assert_close(out[0, 0], 2.0 * inputs[0, 0])
    torch.testing.assert_close(out[1, 0], inputs[1, 0])
    records = [denoising_record(out, i) for i in range(2)]
    assert [r["sigma_data"] for r in records] == pytest.approx([6.0, 3.0]) and [r["sigma_source"] for r in records] == ["given", "given"]
    with pytest.raises(InputError, match=r"no network for the target contrast 'pd'"):
        inferer(inputs[:1], networks, target_contrast="pd")
    with pytest.raises(InputError, match="no target contrast was named"):
        inferer(inputs[:1], Gain(1.0))


# ------------------------------------------------------------------ datalists


def test_datalists_json_and_csv(data, tmp_path):
    subjects = load_datalist(data / "subjects.json", CONTRASTS)
    assert [s["subject"] for s in subjects] == ["sub-0", "sub-1"]
    assert subjects[1]["t2"] == str(data / "sub-1" / "t2.nii.gz")  # relative to the datalist's folder
    wrapped = data / "wrapped.json"
    wrapped.write_text(json.dumps({"subjects": json.loads((data / "subjects.json").read_text())}))
    assert load_datalist(wrapped) == subjects  # contrasts default to the datalist's, in order

    csv = tmp_path / "subjects.csv"
    csv.write_text(f"subject, t1 ,t2,pd\nsub-0,{data}/sub-0/t1.nii.gz,{data}/sub-0/t2.nii.gz,\n,{data}/sub-1/t1.nii.gz,,x/pd.nii.gz\n")
    rows = load_datalist(csv)
    assert rows[0] == {"subject": "sub-0", "t1": f"{data}/sub-0/t1.nii.gz", "t2": f"{data}/sub-0/t2.nii.gz"}  # empty cell: missing
    assert rows[1] == {"subject": "", "t1": f"{data}/sub-1/t1.nii.gz", "pd": str(tmp_path / "x" / "pd.nii.gz")}
    assert list(load_datalist(csv, ["pd", "t1"])[1]) == ["subject", "pd", "t1"]


# (case in docs/bad-inputs.md, datalist content, suffix, error, message pattern)
DATALIST_CASES = [
    ("datalist_missing_column", "subject,t1,t2\na,a1.nii.gz,a2.nii.gz\n", ".csv", InputError,
     r"subjects\.csv: no column \['pd'\] \(the columns are \['subject', 't1', 't2'\]\); the first row must name one column per contrast"),
    ("datalist_unknown_contrast", json.dumps([{"t1": "a.nii.gz", "t2": "b.nii.gz"}]), ".json", InputError,
     r"subjects\.json: no subject has a 'pd' file \(the datalist names \['t1', 't2'\]\); set contrasts to names the datalist uses"),
    ("datalist_not_json", "[{'t1': 'a.nii.gz'}", ".json", InputError, r"subjects\.json: not a JSON datalist"),
    ("datalist_entry_not_object", json.dumps(["a.nii.gz"]), ".json", InputError, r"subjects\.json: subject 1 is 'a\.nii\.gz', not an object"),
    ("datalist_empty", "[]", ".json", InputError, r"subjects\.json: lists no subject"),
    ("datalist_repeated_subject", json.dumps([{"subject": "a", "t1": "1.nii.gz"}, {"subject": "a", "t1": "2.nii.gz"}]), ".json",
     InputError, r"the subject ids \['a'\] occur more than once"),
    ("datalist_bad_subject_id", json.dumps([{"subject": "../up", "t1": "1.nii.gz"}]), ".json", InputError, r"has the id '\.\./up'; an id names an output folder"),
    ("datalist_other_format", "t1: a.nii.gz", ".yaml", InputError, r"subjects\.yaml: a datalist is a \.json or \.csv file"),
]


@pytest.mark.parametrize(("case", "content", "suffix", "error", "pattern"), DATALIST_CASES, ids=[c[0] for c in DATALIST_CASES])
def test_bad_datalists_one_clear_error(case, content, suffix, error, pattern, tmp_path):
    path = tmp_path / f"subjects{suffix}"
    path.write_text(content)
    contrasts = None if case in ("datalist_repeated_subject", "datalist_bad_subject_id", "datalist_other_format") else CONTRASTS
    with pytest.raises(error, match=pattern):
        load_datalist(path, contrasts)


def test_missing_datalist_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.json: no such datalist file; check datalist_file"):
        load_datalist(tmp_path / "absent.json", CONTRASTS)
    with pytest.raises(InputError, match="no datalist was given: set datalist_file"):
        load_datalist(None, CONTRASTS)


def test_outputs_of_two_subjects_may_not_share_a_name(tmp_path):
    same_names = [{"subject": "", "t1": "a/T1.nii.gz"}, {"subject": "", "t1": "b/T1.nii.gz"}]
    assert len(target_items(same_names, ["t1"])) == 2  # written beside the inputs: no clash
    with pytest.raises(InputError, match=r"a/T1\.nii\.gz and b/T1\.nii\.gz would be written to one output \(T1_denoised\): give each subject an id"):
        target_items(same_names, ["t1"], check_outputs=True)
    with_ids = [{**s, "subject": f"s{k}"} for k, s in enumerate(same_names)]
    assert [i["source"] for i in target_items(with_ids, ["t1"], check_outputs=True)] == ["a/T1.nii.gz", "b/T1.nii.gz"]
    one_subject = [{"subject": "s", "t1": "t1/scan.nii.gz", "t2": "t2/scan.nii.gz"}]
    with pytest.raises(InputError, match="rename one of them"):
        target_items(one_subject, ["t1", "t2"], check_outputs=True)


# ------------------------------------------------------------------ joint mode: Python API and CLI


@pytest.fixture(scope="module")
def api_models(data, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("api_models")
    torch.set_num_threads(1)
    train_multicontrast(
        data / "subjects.json", folder, contrasts=CONTRASTS, sigma_data={"t1": "auto", "t2": 0.06, "pd": "auto"},
        epochs=1, iterations_per_epoch=2, batch_size=2, patch_size=32, warmup_iterations=1, features=TINY, progress=False,
    )
    return folder


def test_joint_training_writes_one_network_per_target_with_its_channel_order(api_models):
    for target in CONTRASTS:
        assert (api_models / target / "model.pt").is_file()
        assert read_channel_order(api_models / target / "model.pt") == rotate_target(CONTRASTS, target)
        config = json.loads((api_models / target / "model_config.json").read_text())
        assert config["network"]["in_channels"] == 3 and config["training"]["channels"] == rotate_target(CONTRASTS, target)
    assert json.loads((api_models / "t2" / "model_config.json").read_text())["training"]["sigma_data"] == 0.06


def test_denoise_subject_writes_every_contrast_with_its_inputs_header(data, api_models, tmp_path):
    before = _digest(data / "sub-0")
    files = {name: data / "sub-0" / f"{name}.nii.gz" for name in ["pd", "t2", "t1"]}  # any order: each model's recorded one is used
    outputs = denoise_subject(files, api_models, tmp_path / "out", flips=1)
    assert sorted(outputs) == sorted(CONTRASTS)
    for name, path in outputs.items():
        source, output = nib.load(files[name]), nib.load(path)
        assert path == tmp_path / "out" / f"{name}_denoised.nii.gz"
        np.testing.assert_allclose(output.affine, source.affine)
        assert output.header["descrip"] == source.header["descrip"] and output.shape == source.shape
        assert np.isfinite(output.get_fdata()).all() and not np.allclose(output.get_fdata(), source.get_fdata())
    assert _digest(data / "sub-0") == before
    # the t2 output is the t2 network's: denoising t2 alone gives the same image
    alone = denoise_subject(files, api_models, tmp_path / "alone", targets="t2", flips=1)
    np.testing.assert_allclose(nib.load(alone["t2"]).get_fdata(), nib.load(outputs["t2"]).get_fdata(), atol=1e-6)


def test_denoise_subject_refuses_before_writing(data, api_models, tmp_path):
    files = {name: data / "sub-0" / f"{name}.nii.gz" for name in CONTRASTS}
    with pytest.raises(InputError, match=r"subject sub-0: no 'pd' image, a guide of the 't1' network"):
        denoise_subject({"t1": files["t1"], "t2": files["t2"]}, api_models, tmp_path / "out", targets=["t1"], subject="sub-0")
    # guides named in another order than the networks were trained with: refused (channel_order_mismatch)
    with pytest.raises(InputError, match=r"t1/model\.pt: trained with the input channels \['t1', 't2', 'pd'\] .*this run stacks \['t1', 'pd', 't2'\]"):
        denoise_subject(files, api_models, tmp_path / "out", contrasts=["t1", "pd", "t2"])
    assert not (tmp_path / "out").exists()


def test_cli_denoises_every_subject_and_goes_on_past_a_bad_one(data, api_models, tmp_path):
    entries = json.loads((data / "subjects.json").read_text())
    entries[1] = {k: v for k, v in entries[1].items() if k != "pd"}
    (data / "partial.json").write_text(json.dumps(entries))
    with pytest.raises(Exception, match=r"3 of 6 inputs failed") as raised:
        _denoise_multicontrast(str(data / "partial.json"), str(api_models), output_dir=str(tmp_path / "out"), flips=1)
    assert type(raised.value).__name__ == "BatchFailedError"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [r["status"] for r in summary["results"]] == ["denoised"] * 3 + ["failed"] * 3
    assert "subject sub-1: no 'pd' image" in summary["results"][3]["message"]
    assert sorted(p.name for p in (tmp_path / "out" / "sub-0").glob("*_denoised.nii.gz")) == ["pd_denoised.nii.gz", "t1_denoised.nii.gz", "t2_denoised.nii.gz"]
    assert not (tmp_path / "out" / "sub-1").exists()


# ------------------------------------------------------------------ the bundle


@pytest.fixture
def at_repo_root(monkeypatch):
    monkeypatch.chdir(REPO)


def _cause(error: BaseException, kind: type) -> BaseException:
    """The ``kind`` error in ``error``'s chain (MONAI wraps errors of config expressions)."""
    while error is not None and not isinstance(error, kind):
        error = error.__cause__ or error.__context__
    assert error is not None, f"no {kind.__name__} in the chain"
    return error


def _bundle(configs, workflow_type, **override):
    return create_workflow(config_file=[str(CONFIGS / c) for c in configs], workflow_type=workflow_type, logging_file=False, **override)


@pytest.fixture(scope="module")
def bundle_root(data, tmp_path_factory) -> Path:
    """Train the three networks with train_multicontrast.json, one target per run (as docs/multicontrast.md says)."""
    root = tmp_path_factory.mktemp("bundle_multicontrast")
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        for target in CONTRASTS:
            workflow = _bundle(
                ["train.json", "train_multicontrast.json"], "train", bundle_root=str(root), datalist_file=str(data / "subjects.json"),
                contrasts=CONTRASTS, target_contrast=target, sigma_data={"t1": "auto", "t2": "auto", "pd": 0.06}, features=TINY,
                flips=1, **TINY_TRAIN,
            )
            assert workflow.check_properties() == []
            workflow.run()
            workflow.finalize()
    finally:
        os.chdir(cwd)
    return root


def test_bundle_training_writes_each_target_network_and_its_channel_order(bundle_root):
    for target in CONTRASTS:
        model = bundle_root / "models" / target / "model.pt"
        NoiseConditionedUNet(in_channels=3, features=TINY, context_slices=DEFAULT_CONTEXT_SLICES).load_state_dict(torch.load(model, weights_only=True))
        assert read_channel_order(model) == rotate_target(CONTRASTS, target)
        assert (bundle_root / "models" / target / "checkpoints" / "checkpoint_1.pt").is_file()
        report = json.loads((bundle_root / "eval" / f"train_{target}" / "validation_no_reference.json").read_text())
        assert len(report[-1]["volumes"]) == 2


def test_bundle_joint_inference_denoises_every_contrast_of_every_subject(data, bundle_root, tmp_path, at_repo_root):
    before = _digest(data / "sub-0")
    workflow = _bundle(
        ["inference.json", "inference_multicontrast.json"], "infer", ckpt_dir=str(bundle_root / "models"),
        datalist_file=str(data / "subjects.json"), contrasts=CONTRASTS, output_dir=str(tmp_path), **TINY_INFER,
    )
    assert workflow.check_properties() == []
    workflow.run()
    workflow.finalize()
    assert _digest(data / "sub-0") == before
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["denoised"] == 6 and summary["failed"] == 0
    for subject in CORNERS:
        for name in CONTRASTS:
            source, output = nib.load(data / subject / f"{name}.nii.gz"), nib.load(tmp_path / subject / f"{name}_denoised.nii.gz")
            np.testing.assert_allclose(output.affine, source.affine)
            assert output.header["descrip"] == source.header["descrip"] and output.shape == source.shape
            report = json.loads((tmp_path / subject / f"{name}_denoised.json").read_text())
            assert report["target_contrast"] == name and report["channels"] == rotate_target(CONTRASTS, name)
            assert report["checkpoint_dir"] == str(bundle_root / "models") and 0 < report["no_reference"]["residual_std_ratio"]
    # the bundle and the Python API give the same images with the same networks
    networks = {}
    for name in CONTRASTS:
        networks[name] = NoiseConditionedUNet(in_channels=3, features=TINY, context_slices=DEFAULT_CONTEXT_SLICES)
        networks[name].load_state_dict(torch.load(bundle_root / "models" / name / "model.pt", weights_only=True))
    files = {name: data / "sub-1" / f"{name}.nii.gz" for name in CONTRASTS}
    api = denoise_subject(files, networks, tmp_path / "api", contrasts=CONTRASTS, flips=1)
    for name in CONTRASTS:
        np.testing.assert_allclose(
            nib.load(api[name]).get_fdata(), nib.load(tmp_path / "sub-1" / f"{name}_denoised.nii.gz").get_fdata(), rtol=1e-5, atol=1e-5
        )


def test_the_documented_command_denoises_all_contrasts(data, bundle_root, tmp_path):
    """docs/multicontrast.md's one command, as typed (with tiny-network overrides and a per-contrast sigma)."""
    command = [
        sys.executable, "-m", "monai.bundle", "run",
        "--config_file", "['bundle/configs/inference.json','bundle/configs/inference_multicontrast.json']",
        "--datalist_file", str(data / "subjects.json"), "--ckpt_dir", str(bundle_root / "models"), "--output_dir", str(tmp_path),
        "--contrasts", "['t1','t2','pd']", "--sigma_data", "{'t1': 'auto', 't2': 0.06, 'pd': 'auto'}",
        "--features", json.dumps(TINY), "--flips", "1",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*_denoised.nii.gz"))
    assert written == [f"{s}/{c}_denoised.nii.gz" for s in CORNERS for c in sorted(CONTRASTS)]
    report = json.loads((tmp_path / "sub-1" / "t2_denoised.json").read_text())
    assert report["sigma_data"] == pytest.approx(0.06) and report["sigma_source"] == "given"
    assert json.loads((tmp_path / "sub-1" / "pd_denoised.json").read_text())["sigma_source"].startswith("estimated")


def test_bundle_single_target_with_per_contrast_sigma(data, bundle_root, tmp_path, at_repo_root):
    workflow = _bundle(
        ["inference.json", "inference_multicontrast.json"], "infer", ckpt_dir=str(bundle_root / "models"),
        datalist_file=str(data / "subjects.json"), contrasts=CONTRASTS, output_dir=str(tmp_path), joint=False,
        target_contrast="t2", sigma_data={"t2": 0.05}, **TINY_INFER,
    )
    workflow.run()
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*_denoised.nii.gz")) == ["sub-0/t2_denoised.nii.gz", "sub-1/t2_denoised.nii.gz"]
    report = json.loads((tmp_path / "sub-0" / "t2_denoised.json").read_text())
    assert report["sigma_data"] == pytest.approx(0.05) and report["sigma_source"] == "given"


def test_bundle_missing_guide_fails_that_subject_only(data, bundle_root, tmp_path, at_repo_root):
    entries = json.loads((data / "subjects.json").read_text())
    del entries[0]["pd"]
    (tmp_path / "partial.json").write_text(json.dumps([{k: str(data / v) if k != "subject" else v for k, v in e.items()} for e in entries]))
    workflow = _bundle(
        ["inference.json", "inference_multicontrast.json"], "infer", ckpt_dir=str(bundle_root / "models"),
        datalist_file=str(tmp_path / "partial.json"), contrasts=CONTRASTS, output_dir=str(tmp_path / "out"), **TINY_INFER,
    )
    with pytest.raises(SystemExit, match="3 of 6 inputs failed"):
        workflow.run()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    failed = [r for r in summary["results"] if r["status"] == "failed"]
    assert [r["input"] for r in failed] == [str(data / "sub-0" / "t1.nii.gz"), str(data / "sub-0" / "t2.nii.gz"), "sub-0: no pd image"]
    assert all(r["stage"] == "load" and re.search(r"subject sub-0: no 'pd' image", r["message"]) for r in failed)
    assert not list((tmp_path / "out").glob("sub-0/*.nii.gz")) and len(list((tmp_path / "out").glob("sub-1/*_denoised.nii.gz"))) == 3


def test_bundle_refuses_networks_of_another_channel_order_or_missing(data, bundle_root, tmp_path, at_repo_root):
    settings = {"ckpt_dir": str(bundle_root / "models"), "datalist_file": str(data / "subjects.json"), "output_dir": str(tmp_path), **TINY_INFER}
    swapped = _bundle(["inference.json", "inference_multicontrast.json"], "infer", contrasts=["t1", "pd", "t2"], **settings)
    with pytest.raises(Exception) as raised:  # MONAI wraps it; the InputError is checked below
        swapped.run()
    message = str(_cause(raised.value, InputError))
    assert "t1/model.pt: trained with the input channels ['t1', 't2', 'pd'] (contrasts.json beside it), but this run stacks ['t1', 'pd', 't2']" in message
    only_t1 = tmp_path / "models" / "t1"
    only_t1.mkdir(parents=True)
    for file in ("model.pt", "contrasts.json"):
        (only_t1 / file).write_bytes((bundle_root / "models" / "t1" / file).read_bytes())
    no_model = _bundle(["inference.json", "inference_multicontrast.json"], "infer", contrasts=CONTRASTS, **{**settings, "ckpt_dir": str(tmp_path / "models")})
    with pytest.raises(Exception) as raised:
        no_model.run()
    assert re.search(r"models/t2/model\.pt: no t2 model; train it \(train_multicontrast\.json", str(_cause(raised.value, FileNotFoundError)))
    assert not list(tmp_path.rglob("*.nii.gz"))


def test_bundle_training_refuses_a_folder_of_another_channel_order(data, bundle_root, at_repo_root):
    workflow_args = {
        "bundle_root": str(bundle_root), "datalist_file": str(data / "subjects.json"), "contrasts": ["t1", "pd", "t2"],
        "target_contrast": "t1", "features": TINY, **TINY_TRAIN,
    }
    with pytest.raises(Exception) as raised:  # at initialize, wrapped by MONAI
        _bundle(["train.json", "train_multicontrast.json"], "train", **workflow_args)
    message = str(_cause(raised.value, InputError))
    assert re.search(r"models/t1: holds a run trained with the input channels \['t1', 't2', 'pd'\] .*this run stacks \['t1', 'pd', 't2'\]", message)


def test_multicontrast_configs_agree_on_every_shared_key():
    train, inference = (json.loads((CONFIGS / name).read_text()) for name in ("train_multicontrast.json", "inference_multicontrast.json"))
    base = json.loads((CONFIGS / "inference.json").read_text())
    shared = set(train) & set(inference)
    assert {"contrasts", "load_transforms", "in_channels", "subjects"} <= shared
    assert {key for key in shared if train[key] != inference[key]} == set()
    redefined = set(inference) & set(base) - shared
    assert redefined <= {"network", "ckpt_path", "handlers", "dataset", "summary", "evaluator", "postprocessing"}, redefined


# ------------------------------------------------------------------ documentation


# every multi-contrast case of docs/bad-inputs.md and the test that builds it
CASE_TESTS = {
    **{case[0]: test_bad_datalists_one_clear_error for case in DATALIST_CASES},
    "missing_datalist": test_missing_datalist_file,
    "guide_shape_mismatch": test_guide_of_another_shape_is_refused_naming_both_files,
    "guide_spacing_mismatch": test_guide_of_another_voxel_size_is_refused,
    "guide_position_mismatch": test_guide_at_another_position_is_refused_unless_within_tolerance,
    "guide_outside_target": test_resampled_guide_outside_the_target_is_refused,
    "missing_guide": test_missing_guide_and_missing_target_name_the_subject_and_contrast,
    "missing_target": test_missing_guide_and_missing_target_name_the_subject_and_contrast,
    "sigma_per_contrast": test_inferer_picks_each_targets_network_and_sigma,
    "output_name_clash": test_outputs_of_two_subjects_may_not_share_a_name,
    "channel_order_mismatch": test_bundle_refuses_networks_of_another_channel_order_or_missing,
    "missing_contrast_model": test_bundle_refuses_networks_of_another_channel_order_or_missing,
    "training_channel_order_mismatch": test_bundle_training_refuses_a_folder_of_another_channel_order,
}


def test_every_multicontrast_case_is_documented():
    documented = DOCS.read_text()
    missing = [case for case in CASE_TESTS if f"`{case}`" not in documented]
    assert not missing, f"docs/bad-inputs.md does not list {missing}"
