"""The signed event pipe from the grading child: the grader's end reads lines and checks
each line's signature and sequence number.

Events travel through a pipe, each line signed (HMAC-SHA256) with a key the child reads and
closes before it imports any submission code (``autograder.recorder``); unsigned, replayed
or forged lines are reported as such and cost the test that was running.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os

FORGED = ("the submission wrote {what} into the grader's result channel while this test "
          "ran: rejected, and this test scores zero")


class Channel:
    """The grader's end of the event pipe: reads lines, checks each line's signature."""

    def __init__(self, read_fd: int, key: bytes):
        self.fd, self.key, self.seq, self.buffer = read_fd, key, 0, b""
        os.set_blocking(read_fd, False)

    def read(self) -> list[tuple[str, object]]:
        """In arrival order: ("event", a signed event) or ("forged", what was wrong)."""
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.buffer += chunk
            if len(self.buffer) > 1 << 24:  # a flood of junk: keep the tail only
                self.buffer = self.buffer[-(1 << 20):]
        *lines, self.buffer = self.buffer.split(b"\n")
        items = []
        for line in lines:
            event = self._verify(line)
            if isinstance(event, dict):
                items.append(("event", event))
            elif line.strip():
                items.append(("forged", event))
        return items

    def _verify(self, line: bytes):
        try:
            outer = json.loads(line)
            seq, mac, payload = outer["seq"], outer["mac"], outer["event"]
            expected = hmac.new(self.key, f"{seq}:{payload}".encode(), hashlib.sha256)
        except Exception:
            return "a line that is not a signed event"
        if not isinstance(mac, str) or not hmac.compare_digest(mac, expected.hexdigest()):
            return "a line with a wrong signature"
        if seq != self.seq + 1:
            return "a replayed or out-of-order line"
        self.seq = seq
        return json.loads(payload)

    def close(self) -> None:
        os.close(self.fd)
