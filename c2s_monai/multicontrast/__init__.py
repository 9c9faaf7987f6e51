"""Multi-contrast C2S: co-registered contrasts of one subject as input channels (docs/method.md section 9).

Modules: :mod:`.channels` (names and order), :mod:`.stacking` (channels on one grid),
:mod:`.datalists` (subjects from JSON or CSV), :mod:`.records` (the order beside the weights).

Other contrasts of the same subject, on the target's voxel grid, enter as extra input
channels; only the target contrast (channel 0) is re-corrupted by the loss and predicted by
the network, the guides are passed as observed:

    x_tau = [y_target + tau z, y_guide_1, ..., y_guide_K, s_t],   D(x_tau) ~ E[x_target | x_tau]

(:class:`c2s_monai.losses.GDSMLoss`, :class:`c2s_monai.networks.NoiseConditionedUNet`).
Each channel is scaled by its own robust intensity scale; the noise level is the target's
(:class:`c2s_monai.transforms.ScaleNoisyImage`).

**Channel order.** The contrasts are named (``"t1"``, ``"t2"``, ``"flair"``) and configured in
a fixed order; the input of the network for target ``t`` is ``rotate_target(order, t)``:
``t`` first, then the other contrasts in the configured order. A network knows which guide
is which only by its position, so one network is trained per target contrast and the order
it was trained with is written beside its weights (``contrasts.json``,
:func:`write_channel_order`) and checked before it is used (:func:`check_channel_order`).
*Joint mode* denoises every contrast of a subject in turn, each with its own network,
guided by the others.

**Grids.** :class:`StackContrasts` stacks the contrasts into channels only when every guide
has the target's shape, voxel size and position (affine) within ``tolerance`` mm; otherwise
it raises :class:`~c2s_monai.errors.InputError` naming both files and what differs, or, with
``resample=True``, resamples the guide onto the target's grid with MONAI's
``ResampleToMatch`` (trilinear, from the scanner coordinates of the affines: the images
must already be aligned in the scanner's space, as the series of one session are).

**Missing guides.** A subject without one of the contrasts a network takes is refused with
an error naming the subject and the contrast: no channel is ever filled in or dropped.

**Datalists** (:func:`load_datalist`): JSON, a list of ``{"subject": "sub-01", "t1": path,
"t2": path, "flair": path}`` (or such a list under ``"subjects"``), or CSV with a header row
naming the columns (``subject,t1,t2,flair``). Relative paths are relative to the datalist's
folder; ``subject`` is optional (outputs then go to ``<output_dir>/<subject>/``).
"""

from __future__ import annotations

from c2s_monai.multicontrast.channels import RESERVED_KEYS, channel_orders, check_contrasts, denoising_targets, optional_contrasts, rotate_target
from c2s_monai.multicontrast.datalists import datalist_contrasts, load_datalist, target_items
from c2s_monai.multicontrast.records import (
    CHANNELS_FILE,
    check_channel_order,
    contrast_model_path,
    networks_by_target,
    read_channel_order,
    record_channel_order,
    write_channel_order,
)
from c2s_monai.multicontrast.stacking import StackContrasts, StackContrastsd, grid_difference, require_contrasts, subject_label

__all__ = [
    "CHANNELS_FILE",
    "RESERVED_KEYS",
    "StackContrasts",
    "StackContrastsd",
    "channel_orders",
    "check_channel_order",
    "check_contrasts",
    "contrast_model_path",
    "datalist_contrasts",
    "denoising_targets",
    "grid_difference",
    "load_datalist",
    "networks_by_target",
    "optional_contrasts",
    "read_channel_order",
    "record_channel_order",
    "require_contrasts",
    "rotate_target",
    "subject_label",
    "target_items",
    "write_channel_order",
]
