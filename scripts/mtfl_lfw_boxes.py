"""Write MTFL's lfw_5590 crops, with face boxes, as a JSON-lines source for `mtcnn data`.

    python scripts/mtfl_lfw_boxes.py --mtfl ../shared/data/mtfl/new_training.txt \
        --sun ../shared/data/sun2013/trainImageList.txt --out lfw5590.jsonl

MTFL's lfw_5590 crops are the Sun 2013 list's LFW photos shrunk to 80x80, whose full-size
images are not here. Their five points are given in crop pixels, but no box; the Sun 2013
list gives the box in full-photo pixels. Each crop gets the Sun box mapped by the scale and
offset that carry the Sun points onto the MTFL points (exact to 0.001 px on all 4,151;
`torchmtcnn.data.readers.landmarks.boxes_from_a_rescaled_copy`). Only lfw_5590 is written:
MTFL's net_7876 crops are the Sun 2013 photos that the held-out evaluation draws from.
The shipped weights' O-Net was fine-tuned with these faces (docs/training.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from torchmtcnn.data.readers import read_annotations
from torchmtcnn.data.readers.landmarks import boxes_from_a_rescaled_copy
from torchmtcnn.data.records import LANDMARK_NAMES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mtfl", type=Path, required=True, help="MTFL new_training.txt")
    parser.add_argument("--sun", type=Path, required=True, help="Sun 2013 trainImageList.txt")
    parser.add_argument("--out", type=Path, required=True, help="JSON-lines file to write")
    args = parser.parse_args()
    crops = [r for r in read_annotations(args.mtfl, "mtfl").records if r.image.parent.name == "lfw_5590"]
    sun = read_annotations(args.sun, "sun2013", check_images=False).records  # LFW photos are not here
    mapped, skipped = boxes_from_a_rescaled_copy(crops, sun)
    with open(args.out, "w") as f:
        for rec in mapped:
            points = {name: [round(float(x), 3), round(float(y), 3)]
                      for name, (x, y) in zip(LANDMARK_NAMES, rec.landmarks[0])}
            face = {"box": [round(float(v), 3) for v in rec.boxes[0]], "keypoints": points}
            f.write(json.dumps({"image": str(rec.image.resolve()), "faces": [face]}) + "\n")
    print(f"{len(mapped)} faces written to {args.out}; {len(skipped)} left out")
    for line in skipped[:20]:
        print("  " + line)


if __name__ == "__main__":
    main()
