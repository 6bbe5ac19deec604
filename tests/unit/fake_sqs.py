"""An SQS client for unit tests: takes every message, and checks group ids as SQS documents them."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

# SQS's MessageGroupId: up to 128 alphanumeric characters and punctuation (!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~).
SQS_GROUP_ID = re.compile(f"[A-Za-z0-9{re.escape(string.punctuation)}]{{1,128}}")


class GroupCheckingSqs:
    """Answers like SQS: a call with an invalid MessageGroupId fails as a whole."""

    def __init__(self) -> None:
        self.group_ids: list[str] = []

    def _check(self, group_id: str | None) -> None:
        if group_id is not None and not SQS_GROUP_ID.fullmatch(group_id):
            raise ClientError(
                {"Error": {"Code": "InvalidParameterValue", "Message": "MessageGroupId is invalid"}},
                "SendMessage",
            )
        if group_id is not None:
            self.group_ids.append(group_id)

    def send_message(self, **call: Any) -> Mapping[str, Any]:
        self._check(call.get("MessageGroupId"))
        return {"MessageId": "1"}

    def send_message_batch(self, **call: Any) -> Mapping[str, Any]:
        for entry in call["Entries"]:
            self._check(entry.get("MessageGroupId"))
        return {"Successful": [{"Id": entry["Id"]} for entry in call["Entries"]], "Failed": []}
