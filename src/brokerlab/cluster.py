"""Transitional: the cluster launcher is brokerlab.backstage.clusters now
(`python -m brokerlab.backstage cluster|node ...`); `node` stays until cluster_tools
stops importing it, then this file goes."""
# transitional

from brokerlab.backstage.clusters import Node, node

__all__ = ["Node", "node"]
