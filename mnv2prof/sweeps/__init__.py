"""A profile's grid measured row by row into a journal (sweep.py), a shard of it (shard.py), the
shards merged (merge.py), or its points as tasks on a Ray cluster (cluster.py, ray_address.py)."""
