"""Notifications (``[notify]``): webhooks told when a pass finished, a pair failed or
stopped at its bad-item limit, a cutover was signed off (complete or not), or the job
stalled. ``schema`` (the table), ``events`` (the generic, Teams and Slack bodies),
``fields`` (what each event says), ``policy`` (retries and stalls, pure), ``sender`` (the
background sender that never slows the copy), ``watch`` (the stall watch).

Nothing is imported here: ``config`` reads ``schema`` while ``sender`` needs the report."""
