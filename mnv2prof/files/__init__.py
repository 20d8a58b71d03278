"""The tool's own files: atomic writes and the checks on outputs (atomic.py), the cache root and
what vouches for a cached file (cache.py), the rules every results file keeps (results.py), one
writer at a time on a journal (locks.py), and JSON and TOML read with a depth limit
(nesting.py)."""
