"""One mailbox pair in parts of one idea each, and a job of many pairs.

``mirror`` (the target's folders) -> ``produce`` (enumerate, filter, decide, batch) ->
``stages`` (exporters -> importers, bounded in items and bytes) -> ``settle`` (unknown
outcomes looked up by search key before anything is resent); ``ledger`` alone writes
outcomes and statistics; ``pair`` runs them for one pair, ``job`` for many.
"""
