"""The Comet sink: push mirrored experiments into a Comet instance, skipping what is there.

client.py     HTTP writer (retries, credentials)      plan.py       what the destination lacks
experiment.py writing one experiment                  workspace.py  projects, artifacts, registry, panels
ledger.py     ledger rows, derived keys, the marker
"""
