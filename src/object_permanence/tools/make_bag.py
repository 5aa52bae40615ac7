"""Write a simulated scenario to a rosbag2 (MCAP) folder, for ``replay.launch.py``.

    python -m object_permanence.tools.make_bag --scenario cluttered --frames 300 out/sim_bag
    python -m object_permanence.tools.make_bag --image-transport compressed out/sim_bag_jpeg

``--image-transport compressed`` writes the images as a robot usually records them (JPEG
``sensor_msgs/CompressedImage`` on ``/stereo/<cam>/image_raw/compressed``): replay such a bag with
``replay.launch.py image_transport:=compressed``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from object_permanence.core.sim.bag import IMAGE_TRANSPORTS, write_bag
from object_permanence.core.sim.scenarios import SCENARIOS, make_scenario
from object_permanence.core.sim.world import SimWorld


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path, help="bag folder to create (must not exist)")
    parser.add_argument("--scenario", default="cluttered", choices=sorted(SCENARIOS))
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-transport", default="raw", choices=IMAGE_TRANSPORTS,
                        help="raw: sensor_msgs/Image; compressed: JPEG sensor_msgs/CompressedImage on "
                        "<image topic>/compressed")
    args = parser.parse_args(argv)
    if args.output.exists():
        print(f"make_bag: {args.output} exists already", file=sys.stderr)
        return 2
    try:
        write_bag(SimWorld(make_scenario(args.scenario), seed=args.seed), args.output, args.frames,
                  image_transport=args.image_transport)
    except ValueError as exc:
        print(f"make_bag: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.frames} frames of '{args.scenario}' (seed {args.seed}, {args.image_transport} images) "
          f"to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
