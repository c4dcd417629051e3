"""The command line's parts beside ``cli`` (which holds the group, the one door failures leave
by, and the commands of a job on one host): the options commands share (``options``), the
commands of a job shared by several hosts (``hosts``) and the standalone emulator
(``emulator``)."""
