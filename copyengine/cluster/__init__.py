"""One job shared by many hosts: mailbox groups queued in PostgreSQL through procrastinate,
run by ``copyengine worker`` processes on every host (see ``app.py``)."""
