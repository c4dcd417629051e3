"""The console: everything the engine shows people, computed from plain data.

- ``live``: the live table on a terminal (progress events off one), the summary table and
  the outcome line at the end of a run;
- ``signoff``: the cutover's sign-off (screen, outcome line, HTML);
- ``text``: what ``plan``, ``verify``, ``doctor``, ``status``, ``submit`` and ``report`` print;
- ``html``: the self-contained HTML report and its CSV exports;
- ``fit``: tables that fit where they are read (a block per row on a narrow terminal, whole
  in a file or a pipe) and the console a command prints through (a reader that has gone
  does not end the command);
- ``metrics``: Prometheus metrics served while a job runs (imported only with ``--metrics``).

Nothing here reads the state or the service or decides anything: the commands compute, the
console shows. The pipeline never imports it (it counts into ``JobStats``; the JSON report's
writer renders the HTML beside it through ``html``).
"""
