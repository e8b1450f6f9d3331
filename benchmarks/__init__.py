"""s3store's benchmark suite: `python -m benchmarks [--quick] [--json] [case ...]`.

Every figure is a ratio against a baseline measured in the same run, on servers
this suite starts on 127.0.0.1 and stops (see `benchmarks.serve`).
"""
