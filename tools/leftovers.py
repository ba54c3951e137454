"""Fail if the brokers (and clusters, when up) still hold anything named with a prefix.

    python tools/leftovers.py --prefix test1700000000-

Also fails if the course's own Redis was left with persistence switched on (02.04
switches it on and must switch it back).
"""

from __future__ import annotations

import argparse
import sys

import brokerlab
from brokerlab import cluster, local


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", required=True)
    args = parser.parse_args()
    if len(args.prefix) < 3:
        parser.error("prefix too short to be meaningful")
    found = {kind: names for kind, names in brokerlab.leftovers(args.prefix).items() if names}
    if any(cluster._answers(n, 1.0) for n in cluster.nodes()[:1]):  # the clusters run
        from brokerlab import cluster_tools

        found.update({f"cluster {kind}": names
                      for kind, names in cluster_tools.leftovers(args.prefix).items() if names})
    problems = [f"{kind}: {', '.join(names)}" for kind, names in found.items()]
    if local.is_managed("redis"):
        client = brokerlab.redis_client()
        save, appendonly = client.config_get("save")["save"], client.config_get("appendonly")
        if save or appendonly.get("appendonly") != "no":
            problems.append(f"redis persistence left on: save={save!r}, {appendonly}")
    if problems:
        print("Left behind by the notebooks (each notebook's cleanup cell must delete it):")
        print("\n".join(f"  {p}" for p in problems))
        return 1
    print(f"nothing left behind with prefix {args.prefix!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
