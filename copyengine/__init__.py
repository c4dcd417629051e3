"""copyengine: bulk, full-fidelity Exchange Online mailbox copies through Microsoft Graph."""

__version__ = "0.1.0"
