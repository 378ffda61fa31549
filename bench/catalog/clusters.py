"""Documents that come in groups: a task declares `metadata: {cluster: FIELD}` in its YAML
when several of its documents share something that makes their outcomes correlated
(several questions on one passage, variants of one template). Documents with the same
value of FIELD form a cluster; reports then resample whole clusters and show the design
effect (bench/report/stats.py, docs/statistics.md)."""

from __future__ import annotations

METADATA_KEY = "cluster"


def declared_field(metadata) -> str | None:
    """The document field a task's metadata names as its cluster, if any."""
    field = (metadata or {}).get(METADATA_KEY) if isinstance(metadata, dict) else None
    return field if isinstance(field, str) and field else None


def cluster_field(task) -> str | None:
    """The cluster field of an lm-eval Task built from such a YAML."""
    return declared_field(getattr(task.config, "metadata", None))


def cluster_of(entry: dict, field: str | None) -> str | None:
    """One lm-eval sample entry (log_samples) -> its document's cluster id, or None."""
    if field is None:
        return None
    value = (entry.get("doc") or {}).get(field)
    return None if value is None else str(value)
