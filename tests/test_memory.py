"""The torch CPU backend keeps the networks' freed activations instead of faulting them back
in on every call (backends.keep_freed_memory)."""

import os
import platform
import subprocess
import sys

import pytest

SCRIPT = """
import resource, statistics, sys, torch
from torchmtcnn import MTCNN
from torchmtcnn.assets import group_photo
from torchmtcnn.backends import keep_freed_memory
torch.set_num_threads(1)
detector = MTCNN(weights=sys.argv[1], device="cpu")
image = group_photo(640, 480, 6, 0)
faults = []
for _ in range(12):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    detector.detect(image)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
# the mean after three: the heap still grows during the first ones, and glibc's moving mmap
# threshold sometimes spares a few detections by default, so neither one nor a median will do
print(keep_freed_memory(), statistics.mean(faults[3:]))
"""


def page_faults_per_detection(weights: str, keep: str) -> tuple[bool, float]:
    env = dict(os.environ, TORCHMTCNN_KEEP_FREED_MEMORY=keep)
    out = subprocess.run([sys.executable, "-c", SCRIPT, weights], env=env, capture_output=True, text=True,
                         check=True, timeout=300).stdout.split()
    return out[0] == "True", float(out[1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc malloc only")
def test_detections_stop_faulting_pages_back_in(original_weights):
    applied, kept = page_faults_per_detection(str(original_weights), "1")
    not_applied, default = page_faults_per_detection(str(original_weights), "0")
    assert applied and not not_applied
    # measured: 4,800-9,500 faults per 640x480 detection with glibc's defaults, under 300 kept
    assert default > 1000
    assert kept < default / 5


@pytest.mark.parametrize("env, torch_first, expected", [
    ({}, False, "30000"),                          # set before torch loads libgomp
    ({"GOMP_SPINCOUNT": "7"}, False, "7"),          # the user's value is kept
    ({"OMP_WAIT_POLICY": "passive"}, False, None),  # so is their wait policy
    ({}, True, None),                              # too late once torch is loaded: untouched
])
def test_openmp_spin_count_is_set_only_before_torch_and_never_over_the_user(env, torch_first, expected):
    code = ("import os\n" + ("import torch\n" if torch_first else "")
            + "import torchmtcnn\nprint(os.environ.get('GOMP_SPINCOUNT'))")
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True,
                         text=True, check=True).stdout.split()[-1]
    assert out == str(expected)
