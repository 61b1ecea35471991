"""The verbs, one per module; the only package that wires several stages together.

Each verb opens a session, takes the job's lease where it changes the job, and drives the stages:
tables → tasks → shards → batches → results → merge, recording each step in the state store.
"""
