"""The shape of one page of a list of the write API: ``value`` and, unless it is the last, a relative
``@odata.nextLink`` that carries the position (``skiptoken``) after the page's last item."""

from __future__ import annotations

from pydantic import Field, model_serializer

from shared.wire import WireModel


class NextLinkPage(WireModel):
    """A page of a list (``value`` in the subclass), with ``@odata.nextLink`` unless it is the last."""

    next_link: str | None = Field(
        None, alias="@odata.nextLink", description="The next page (relative: path and query); absent on the last."
    )

    @model_serializer(mode="wrap")
    def _without_missing_link(self, handler):
        body = handler(self)
        if body.get("@odata.nextLink") is None:
            body.pop("@odata.nextLink", None)
        return body
