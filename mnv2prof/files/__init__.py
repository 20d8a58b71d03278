"""The tool's own files: atomic writes (atomic.py), the cache root and what vouches for a cached
file (cache.py), and the rules every results file keeps (results.py)."""
