"""The emulator a job embeds when a tenant says ``graph_url = "emulator"``: its ``[emulator]``
table (``schema``, read by ``config``) and the process that serves it for the job's length
(``runner``, used by the command line). Nothing is imported here, so ``config`` can read the
schema without pulling in the runner (which imports ``config``)."""
