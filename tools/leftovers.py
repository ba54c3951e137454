"""Fail if the brokers (and clusters, when up) still hold anything named with a prefix.

    python tools/leftovers.py --prefix test1700000000-

Also fails if the course's own Redis was left with persistence switched on (02.04
switches it on and must switch it back).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import replace

import brokerlab
from brokerlab.health import check
from brokerlab.settings import get_settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", required=True)
    args = parser.parse_args()
    if len(args.prefix) < 3:
        parser.error("prefix too short to be meaningful")
    found = {kind: names for kind, names in brokerlab.leftovers(args.prefix).items() if names}
    settings = get_settings()
    first = replace(settings, kafka_bootstrap_servers=settings.kafka_cluster_bootstrap_servers[:1])
    if check("kafka", first, timeout=1.0).ok:  # the clusters run
        from brokerlab.cleanup import cluster_leftovers

        found.update({f"cluster {kind}": names
                      for kind, names in cluster_leftovers(args.prefix).items() if names})
    problems = [f"{kind}: {', '.join(names)}" for kind, names in found.items()]
    launcher = [sys.executable, "-m", "brokerlab.backstage", "runs", "redis"]
    if subprocess.run(launcher, timeout=60).returncode == 0:  # the course's own Redis
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
