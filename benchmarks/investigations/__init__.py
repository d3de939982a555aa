"""Finished investigations: each script answered one question about tinygan's speed or presets.

They still run (``python benchmarks/investigations/NAME.py``); ``README.md`` here tabulates each
question, the answer the script gave and whether tinygan adopted it.
"""
