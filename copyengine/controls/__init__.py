"""The operator's controls: what holds a pair (suspended, its schedule, StartAfter /
CompleteAfter), read from the job's state and its configuration and seen by the pipeline as
one ``pipeline.gate.Gate``."""
