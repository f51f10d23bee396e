"""The mining proposer cuts exactly what the cascade would feed R-Net and O-Net."""

import pickle

import numpy as np
import pytest
import torch

from torchmtcnn.assets import group_photo
from torchmtcnn.backends import TorchBackend
from torchmtcnn.cascade import Cascade
from torchmtcnn.cascade_config import CascadeConfig
from torchmtcnn.data.mining import MINING_THRESHOLDS, CascadeProposer
from torchmtcnn.nets import build_nets
from torchmtcnn.weights import load_into, read_weights, save_weights


@pytest.mark.parametrize("until", ["pnet", "rnet"])
def test_proposals_are_the_cascades_crop_regions(original_weights, until):
    image = group_photo(640, 480, 6, 0)
    proposer = CascadeProposer(original_weights, until)
    regions = proposer(image)
    nets = build_nets()
    load_into(nets, read_weights(original_weights), original_weights)
    cascade = Cascade(TorchBackend(nets), CascadeConfig(thresholds=MINING_THRESHOLDS))
    found = cascade.run([torch.from_numpy(image)], until=until)
    boxes = found.boxes.trunc() if until == "rnet" else found.boxes
    want = np.stack([boxes[:, 0] - 1, boxes[:, 1] - 1, boxes[:, 2], boxes[:, 3]], 1)
    np.testing.assert_array_equal(regions, want)
    assert len(regions) > 6  # low mining thresholds: many more candidates than faces
    # squares, up to the one pixel that truncating each side separately can cost
    assert np.abs((regions[:, 2] - regions[:, 0]) - (regions[:, 3] - regions[:, 1])).max() <= 1


def test_proposer_pickles_without_its_cascade_and_loads_pnet_only_files(original_weights, tmp_path):
    nets = build_nets()
    load_into(nets, read_weights(original_weights), original_weights)
    pnet_only = save_weights({"pnet": nets["pnet"]}, tmp_path / "pnet.safetensors")
    proposer = CascadeProposer(str(pnet_only), "pnet")
    image = group_photo(320, 240, 2, 1)
    first = proposer(image)
    clone = pickle.loads(pickle.dumps(proposer))
    assert clone._cascade is None
    np.testing.assert_array_equal(clone(image), first)
    with pytest.raises(Exception, match="rnet"):
        CascadeProposer(str(pnet_only), "rnet")(image)  # R-Net weights are missing
    with pytest.raises(ValueError, match="until"):
        CascadeProposer(str(pnet_only), "onet")
