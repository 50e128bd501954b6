"""Usage intervals: how many nodes of which VM size ran for a cluster, when (billing ground truth)."""
