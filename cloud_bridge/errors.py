"""Bridge errors, grouped by what the sender does about them."""

from __future__ import annotations

from edge.core.errors import UpstreamError


class UplinkError(UpstreamError):
    """Delivery failed; `retry_after` (s) when the backend asked for a pause."""

    def __init__(self, reason: str, retry_after: float | None = None,
                 permanent: bool = False) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        # The backend refused the items themselves (400/422): retrying cannot help.
        self.permanent = permanent
