"""Every API operation once, as a :class:`Call`: the request to send and how to read the answer.

``Client`` and ``AsyncClient`` only execute calls, so the two share every path, parameter and
parser. The builders live by concept: :mod:`.functions` (functions and labels), :mod:`.samples`
(samples and search), :mod:`.training` (training, models, invoke), :mod:`.review` (review queue,
proposals, capture policy, dashboard) and :mod:`.keys` (keys, health). Adding an operation is one
builder there plus one line in each client (``name = endpoint(module.name)``).
"""

from winnow_client.calls.base import Call

__all__ = ["Call"]
